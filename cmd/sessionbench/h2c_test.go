package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// protoServer serves fakeSessiond and records, per request, the protocol it
// came in and the client connection (remote address) it came on.
type protoServer struct {
	*httptest.Server
	mu    sync.Mutex
	proto map[string]int64
	conns map[string]bool
}

// newProtoServer starts a server that speaks HTTP/1.1 and, with h2c,
// HTTP/2 with prior knowledge on the same port, as sessiond does. It serves
// h, or a fakeSessiond when h is nil.
func newProtoServer(t *testing.T, h2c bool, h http.Handler) *protoServer {
	if h == nil {
		h = &fakeSessiond{sessions: map[string]int{}}
	}
	s := &protoServer{proto: map[string]int64{}, conns: map[string]bool{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.proto[r.Proto]++
		s.conns[r.RemoteAddr] = true
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	s.Config.Protocols = new(http.Protocols)
	s.Config.Protocols.SetHTTP1(true)
	s.Config.Protocols.SetUnencryptedHTTP2(h2c)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *protoServer) seen() (map[string]int64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int64{}
	for k, v := range s.proto {
		out[k] = v
	}
	return out, len(s.conns)
}

// runJSON runs sessionbench with --json and returns its exit code, the
// report (zero when none was written) and stderr.
func runJSON(t *testing.T, args ...string) (int, Report, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := realMain(append([]string{"--json", "--progress", "0"}, args...), &stdout, &stderr)
	var rep Report
	if stdout.Len() > 0 {
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout.String())
		}
	}
	return code, rep, stderr.String()
}

// TestH2CRunUsesHTTP2 runs against two servers that speak both protocols:
// with --h2c every request the servers see is HTTP/2, all 16 workers share
// --h2c-conns 2 connections per server, and the report says so; without
// it the same servers see HTTP/1.1 only, over a connection per worker.
func TestH2CRunUsesHTTP2(t *testing.T) {
	srv1, srv2 := newProtoServer(t, true, nil), newProtoServer(t, true, nil)
	addrs := srv1.URL + "," + srv2.URL
	common := []string{"--addrs", addrs, "--duration", "0", "--requests", "2000", "--concurrency", "16",
		"--sessions", "50", "--mix", "append=5,get=2,put=1,getfull=1,state=1"}

	code, rep, stderr := runJSON(t, append(common, "--h2c", "--h2c-conns", "2")...)
	if code != 0 {
		t.Fatalf("--h2c run exit %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "h2c (HTTP/2 cleartext, prior knowledge), 2 connections per node") {
		t.Errorf("the start line does not name the protocol:\n%s", stderr)
	}
	if rep.Config.Protocol != "h2c" || rep.Config.H2CConns != 2 {
		t.Errorf("config %+v, want protocol h2c with 2 connections", rep.Config)
	}
	if rep.Total.Count != 2000 || rep.Protocols["HTTP/2.0"] != 2000 || len(rep.Protocols) != 1 {
		t.Errorf("%d requests, responses by protocol %v; want all 2000 over HTTP/2.0", rep.Total.Count, rep.Protocols)
	}
	if rep.TransportErrors["protocol_mismatch"] != 0 || rep.Total.OK == 0 {
		t.Errorf("total %+v, transport errors %v", rep.Total, rep.TransportErrors)
	}
	if rep.Connections != 4 {
		t.Errorf("%d connections dialed, want 2 per server", rep.Connections)
	}
	for i, s := range []*protoServer{srv1, srv2} {
		protos, conns := s.seen()
		// The --h2c check's GET /healthz per client comes on top of the run.
		if protos["HTTP/1.1"] != 0 || protos["HTTP/2.0"] < 900 || conns != 2 {
			t.Errorf("server %d saw %v over %d connections, want only HTTP/2.0 over 2", i+1, protos, conns)
		}
	}

	code, rep, stderr = runJSON(t, common...)
	if code != 0 {
		t.Fatalf("HTTP/1.1 run exit %d; stderr:\n%s", code, stderr)
	}
	if rep.Config.Protocol != "http/1.1" || rep.Protocols["HTTP/1.1"] != 2000 || len(rep.Protocols) != 1 {
		t.Errorf("HTTP/1.1 run: protocol %q, responses by protocol %v", rep.Config.Protocol, rep.Protocols)
	}
	// net/http may dial a spare connection when a worker's next request
	// comes before its last connection is back in the pool, so this is
	// only a lower bound.
	if rep.Connections < 2 {
		t.Errorf("HTTP/1.1 run dialed %d connections, want at least one per server", rep.Connections)
	}

	// The text report names the protocol and what was seen.
	var stdout bytes.Buffer
	if code := realMain([]string{"--addrs", srv1.URL, "--duration", "200ms", "--concurrency", "4", "--h2c", "--progress", "0"}, &stdout, io.Discard); code != 0 {
		t.Fatalf("text run exit %d", code)
	}
	for _, want := range []string{"protocol h2c (HTTP/2 cleartext, prior knowledge), 1 connection per node shared by all workers; 1 connections dialed", "responses by protocol: HTTP/2.0 "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestH2CFailsClearlyAgainstHTTP1OnlyServer: against a server that speaks
// HTTP/1.1 only, --h2c stops before the run with exit 1 and a message that
// names the node and the way out, instead of a minute of transport errors.
func TestH2CFailsClearlyAgainstHTTP1OnlyServer(t *testing.T) {
	var apiRequests atomic.Int64
	h2 := newProtoServer(t, true, nil)
	h1 := newProtoServer(t, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			apiRequests.Add(1)
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	start := time.Now()
	code, rep, stderr := runJSON(t, "--addrs", h2.URL+","+h1.URL, "--h2c", "--duration", "1m", "--concurrency", "4")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("failing took %v: the run was not stopped before it began", took)
	}
	for _, want := range []string{h1.URL + " does not speak HTTP/2 over cleartext with prior knowledge", "--h2c=false", "leave --h2c out"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, h2.URL+" does not speak") {
		t.Errorf("the h2c server was reported as not speaking h2c:\n%s", stderr)
	}
	if rep.Total.Count != 0 || apiRequests.Load() != 0 {
		t.Errorf("a run happened: report total %+v, %d API requests at the HTTP/1 server", rep.Total, apiRequests.Load())
	}
}

func TestParseFlagsH2C(t *testing.T) {
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil || cfg.h2c || cfg.h2cConns != 1 {
		t.Fatalf("defaults: h2c %v conns %d, %v; want HTTP/1.1", cfg.h2c, cfg.h2cConns, err)
	}
	if cfg, err := parseFlags([]string{"--h2c", "--h2c-conns", "4", "--concurrency", "8"}, io.Discard); err != nil || !cfg.h2c || cfg.h2cConns != 4 {
		t.Fatalf("--h2c --h2c-conns 4: %+v, %v", cfg, err)
	}
	for want, args := range map[string][]string{
		"--h2c-conns needs --h2c":                 {"--h2c-conns", "2"},
		"--h2c-conns must be 1-":                  {"--h2c", "--h2c-conns", "0"},
		"--h2c-conns must be 1-8 (--concurrency)": {"--h2c", "--h2c-conns", "9", "--concurrency", "8"},
		"is https": {"--h2c", "--addrs", "https://lb.example"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseFlags(%q) = %v, want an error containing %q", args, err, want)
		}
	}
}
