package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// stallOnce is a server that answers every request at once with 201, except
// the nth, which it holds for stall first.
func stallOnce(t *testing.T, n int64, stall time.Duration) *httptest.Server {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) == n {
			select {
			case <-time.After(stall):
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(201)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// benchJSON runs sessionbench with --json against addr and returns its report.
func benchJSON(t *testing.T, addr string, args ...string) Report {
	t.Helper()
	args = append([]string{"--addrs", addr, "--json", "--mix", "append=1", "--sessions", "4", "--progress", "0"}, args...)
	var stdout, stderr bytes.Buffer
	if code := realMain(args, &stdout, &stderr); code != 0 {
		t.Fatalf("sessionbench %q: exit %d; stderr:\n%s", args, code, stderr.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout.String())
	}
	return rep
}

// One 200 ms stall in 300 requests is a single slow sample to a closed loop
// with one worker: the load waits for the server, p99 stays fast. At a fixed
// rate of 200/s the 40 requests that fell due during the stall wait for it
// too, and the open loop's p99 shows it.
func TestOpenLoopShowsAStallClosedLoopHides(t *testing.T) {
	const stall = 200 * time.Millisecond
	common := []string{"--concurrency", "1", "--duration", "0", "--requests", "300"}

	closed := benchJSON(t, stallOnce(t, 50, stall).URL, common...)
	if closed.OpenLoop != nil || closed.Config.Rate != 0 {
		t.Errorf("closed loop reported open-loop numbers: %+v", closed.OpenLoop)
	}
	if l := closed.Total.LatencyUs; l.Max < stall.Microseconds() || l.P99 > 100_000 {
		t.Errorf("closed loop latency %+v: want the stall only in max, p99 under 100 ms", l)
	}

	open := benchJSON(t, stallOnce(t, 50, stall).URL, append(common, "--rate", "200")...)
	o := open.OpenLoop
	if o == nil {
		t.Fatal("open loop report missing")
	}
	if l := open.Total.LatencyUs; l.P99 < 150_000 || l.Max < stall.Microseconds() {
		t.Errorf("open loop latency %+v: want the stall in p99 (≥ 150 ms)", l)
	}
	if o.Due != 300 || o.Sent != 300 || o.Dropped != 0 || o.Unsent != 0 || open.Total.Count != 300 {
		t.Errorf("open loop accounting %+v, total %d: want 300 due and sent", o, open.Total.Count)
	}
	if o.Late < 20 || o.StartDelayUs.Max < 150_000 {
		t.Errorf("open loop %+v: want the requests due during the stall late", o)
	}
}

// With a backlog of 4 and a stall that outlasts the run, the requests due
// during the stall beyond the 4 are dropped, the 4 are unsent when the run
// ends, and every due request is accounted for.
func TestOpenLoopBacklogDropsAndUnsent(t *testing.T) {
	srv := stallOnce(t, 10, time.Second)
	rep := benchJSON(t, srv.URL, "--concurrency", "1", "--duration", "400ms", "--rate", "200", "--backlog", "4")
	o := rep.OpenLoop
	if o == nil {
		t.Fatal("open loop report missing")
	}
	if o.Due != 80 || o.Sent+o.Dropped+o.Unsent != o.Due || o.Sent != rep.Total.Count {
		t.Errorf("accounting %+v, total %d: want 80 due (400 ms at 200/s) = sent + dropped + unsent", o, rep.Total.Count)
	}
	if o.Unsent != 4 || o.Dropped == 0 || o.Sent < 10 {
		t.Errorf("%+v: want the 4 in the backlog unsent, the rest of the stall dropped, the first 10 sent", o)
	}
	if rep.Config.Backlog != 4 || rep.Config.Rate != 200 {
		t.Errorf("config %+v", rep.Config)
	}
}
