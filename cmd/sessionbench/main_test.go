package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.addrs[0] != "http://127.0.0.1:8080" || cfg.sessions != 1000 || cfg.concurrency != 64 ||
		cfg.mix.String() != "append=70,get=20,put=10" || len(cfg.prefix) != 6 || !validPrefix.MatchString(cfg.prefix) {
		t.Errorf("defaults: %+v", cfg)
	}
	if other, _ := parseFlags(nil, io.Discard); other.prefix == cfg.prefix {
		t.Errorf("two runs got the same random prefix %q", cfg.prefix)
	}
	bad := map[string][]string{
		"--sessions":    {"--sessions", "0"},
		"--concurrency": {"--concurrency", "-1"},
		"--requests":    {"--duration", "0"},
		"--consistency": {"--consistency", "strong"},
		"--prefix":      {"--prefix", "a/b"},
		"--mix":         {"--mix", "append=x"},
		"--addrs":       {"--addrs", "ftp://x"},
		"--timeout":     {"--timeout", "0s"},
		"--rate":        {"--rate", "-1"},
		"--backlog":     {"--rate", "10", "--backlog", "0"},
		"unexpected":    {"extra"},
		"not defined":   {"--nope"},
	}
	for want, args := range bad {
		var stderr bytes.Buffer
		if _, err := parseFlags(args, &stderr); err == nil || !strings.Contains(err.Error()+stderr.String(), want) {
			t.Errorf("parseFlags(%q) = %v, want an error mentioning %q", args, err, want)
		}
	}
	if code := realMain([]string{"--sessions", "0"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("bad flags exit %d, want 2", code)
	}
	var help bytes.Buffer
	if code := realMain([]string{"-h"}, io.Discard, &help); code != 0 || !strings.Contains(help.String(), "NOT the whole session") {
		t.Errorf("-h exit %d, usage %q", code, help.String())
	}
}

// fakeSessiond answers the benchmark's routes like sessiond: 404
// session_not_found until a session is written, and a 503 overloaded on
// every 10th write so that error accounting is exercised.
type fakeSessiond struct {
	mu       sync.Mutex
	sessions map[string]int
	writes   atomic.Int64
}

func (f *fakeSessiond) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/chat/session/")
	if !ok {
		writeErr(w, 404, "not_found")
		return
	}
	id, _, _ := strings.Cut(rest, "/")
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method == http.MethodGet {
		if _, ok := f.sessions[id]; !ok {
			writeErr(w, 404, "session_not_found")
			return
		}
		w.Write([]byte(`{"messages":[]}`))
		return
	}
	if f.writes.Add(1)%10 == 0 {
		writeErr(w, 503, "overloaded")
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeErr(w, 400, "invalid_json")
		return
	}
	f.sessions[id]++
	w.WriteHeader(201)
}

func writeErr(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": code}})
}

func TestRunEndToEnd(t *testing.T) {
	fake := &fakeSessiond{sessions: map[string]int{}}
	var hits1, hits2 atomic.Int64
	counting := func(n *atomic.Int64) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1); fake.ServeHTTP(w, r) })
	}
	srv1, srv2 := httptest.NewServer(counting(&hits1)), httptest.NewServer(counting(&hits2))
	defer srv1.Close()
	defer srv2.Close()

	var stdout, stderr bytes.Buffer
	code := realMain([]string{"--addrs", srv1.URL + "," + srv2.URL, "--json", "--duration", "0", "--requests", "2000",
		"--concurrency", "8", "--sessions", "50", "--mix", "append=5,get=2,put=1,getfull=1,state=1", "--prefix", "t1"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not only the JSON report: %v\n%s", err, stdout.String())
	}
	tot := rep.Total
	if tot.Count != 2000 || tot.OK+tot.OKEmpty+tot.Errors != tot.Count {
		t.Errorf("total %+v, want 2000 requests = ok + ok-empty + errors", tot)
	}
	if len(rep.Operations) != 5 || rep.Operations["append"].Count == 0 || rep.Operations["state"].Count == 0 {
		t.Errorf("operations %v", rep.Operations)
	}
	if rep.ErrorCodes["overloaded"] == 0 || rep.ErrorCodes["overloaded"] != rep.Statuses["503"] || tot.Errors != rep.Statuses["503"] {
		t.Errorf("errors %d, codes %v, statuses %v", tot.Errors, rep.ErrorCodes, rep.Statuses)
	}
	if tot.OKEmpty == 0 || tot.OKEmpty != rep.Statuses["404"] || rep.Operations["put"].OKEmpty != 0 {
		t.Errorf("ok-empty %d, statuses %v", tot.OKEmpty, rep.Statuses)
	}
	if l := tot.LatencyUs; l.P50 > l.P99 || l.P99 > l.Max || l.Max == 0 {
		t.Errorf("latency %+v", l)
	}
	if rep.Config.Prefix != "t1" || len(rep.Config.Addrs) != 2 {
		t.Errorf("config %+v", rep.Config)
	}
	if h1, h2 := hits1.Load(), hits2.Load(); h1+h2 != 2000 || h1 < 900 || h2 < 900 {
		t.Errorf("round-robin: %d and %d requests, want ≈1000 each", h1, h2)
	}

	// The text report names every op and the error breakdown.
	stdout.Reset()
	if code := realMain([]string{"--addrs", srv1.URL, "--duration", "200ms", "--concurrency", "4"}, &stdout, io.Discard); code != 0 {
		t.Fatalf("text run exit %d", code)
	}
	for _, want := range []string{"throughput:", "append", "get", "put", "p99.9 ms", "overloaded", "responses by HTTP status"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestRunNoSuccessExitsNonZero(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var stdout bytes.Buffer
	code := realMain([]string{"--addrs", addr, "--json", "--requests", "20", "--duration", "0", "--concurrency", "2"}, &stdout, io.Discard)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.TransportErrors["connection_refused"] != 20 {
		t.Errorf("transport errors %v, want 20 connection_refused", rep.TransportErrors)
	}
}

// A worker answered 503 with Retry-After waits before its next request, as
// a well-behaved client does, unless --retry-after=false.
func TestWorkersWaitAsRetryAfterAsks(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Retry-After", "1")
		writeErr(w, 503, "overloaded")
	}))
	defer srv.Close()
	run := func(args ...string) int64 {
		hits.Store(0)
		realMain(append([]string{"--addrs", srv.URL, "--json", "--duration", "1500ms", "--concurrency", "4", "--mix", "append=1"}, args...),
			io.Discard, io.Discard)
		return hits.Load()
	}
	// Each of the 4 workers sends at most once per half second.
	if n := run(); n > 4*4 {
		t.Errorf("with Retry-After honoured: %d requests in 1.5 s from 4 workers", n)
	}
	if n := run("--retry-after=false"); n < 100 {
		t.Errorf("with --retry-after=false: only %d requests in 1.5 s", n)
	}
}

// TestVersionNamesTheBuild: `sessionbench --version` prints the build's
// version, as every sessiond binary does, and runs nothing.
func TestVersionNamesTheBuild(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := realMain([]string{"--version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if v := strings.TrimPrefix(strings.TrimSpace(out.String()), "sessionbench "); v == "" || v == out.String() {
		t.Fatalf("--version printed %q", out.String())
	}
}
