package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/client"
)

func TestParseMix(t *testing.T) {
	good := []struct {
		in   string
		want [numOps]int
		str  string
	}{
		{"append=70,get=20,put=10", [numOps]int{70, 20, 10, 0, 0}, "append=70,get=20,put=10"},
		{" getfull = 1 , state=2 ", [numOps]int{0, 0, 0, 1, 2}, "getfull=1,state=2"},
		{"append=1,get=0", [numOps]int{1, 0, 0, 0, 0}, "append=1"},
	}
	for _, g := range good {
		m, err := parseMix(g.in)
		if err != nil {
			t.Errorf("parseMix(%q): %v", g.in, err)
			continue
		}
		if m.weights != g.want || m.String() != g.str {
			t.Errorf("parseMix(%q) = %v %q, want %v %q", g.in, m.weights, m.String(), g.want, g.str)
		}
	}
	bad := map[string]string{
		"":                  "empty",
		"append":            "not op=weight",
		"=5":                "not op=weight",
		"append=70,":        "not op=weight",
		"apend=70":          `unknown op "apend"`,
		"append=x":          "non-negative integer",
		"append=-1":         "non-negative integer",
		"append=1.5":        "non-negative integer",
		"append=1,append=2": "given twice",
		"append=0,get=0":    "every weight is 0",
		"append=9999999":    "over 1000000",
	}
	for in, want := range bad {
		_, err := parseMix(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseMix(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestMixPick(t *testing.T) {
	m, _ := parseMix("append=3,put=1,state=2")
	var got [numOps]int
	for n := range m.total {
		got[m.pick(n)]++
	}
	if got != m.weights {
		t.Fatalf("picks over [0,total) = %v, want the weights %v", got, m.weights)
	}
}

func TestNormalizeAddrs(t *testing.T) {
	got, err := normalizeAddrs("127.0.0.1:8081, http://node2:8082/ ,:8083,,https://lb.example/sessiond/,localhost:9000,[::1]:8080")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:8081", "http://node2:8082", "http://127.0.0.1:8083",
		"https://lb.example/sessiond", "http://localhost:9000", "http://[::1]:8080"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("normalizeAddrs = %q, want %q", got, want)
	}
	bad := map[string]string{
		"":                         "no address",
		" , ":                      "no address",
		"ftp://host:21":            "scheme",
		"http://":                  "no host",
		"http://h:1/?x=1":          "query",
		"http://user:pw@h:1":       "user",
		"host:99999":               "bad port",
		"host:abc":                 "host:abc",
		"127.0.0.1:8080,ftp://x:1": "scheme",
	}
	for in, want := range bad {
		_, err := normalizeAddrs(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("normalizeAddrs(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestBuildRequest(t *testing.T) {
	cfg := &config{prefix: "abc", consistency: "stale"}
	cases := []struct {
		op     opKind
		method string
		url    string
	}{
		{opAppend, "POST", "/api/chat/session/bench-abc-7/messages"},
		{opGet, "GET", "/api/chat/session/bench-abc-7/messages?limit=20&consistency=stale"},
		{opPut, "PUT", "/api/chat/session/bench-abc-7"},
		{opGetFull, "GET", "/api/chat/session/bench-abc-7?consistency=stale"},
		{opState, "GET", "/api/chat/session/bench-abc-7/state?consistency=stale"},
	}
	for _, c := range cases {
		req := buildCall(cfg, c.op, 7, 3, 42, "hello world")
		if req.Method != c.method || req.Path != c.url {
			t.Errorf("%v: %s %s, want %s %s", c.op, req.Method, req.Path, c.method, c.url)
		}
		if req.Body == nil {
			continue
		}
		b := req.Body
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%v: body %s is not JSON: %v", c.op, b, err)
		}
		switch c.op {
		case opAppend:
			if v["id"] != "abc-w3-42" || v["role"] != "user" || v["content"] != "hello world" {
				t.Errorf("append body %s", b)
			}
		case opPut:
			if v["step"] != float64(42) || v["lastSearchCriteria"] == nil {
				t.Errorf("put body %s", b)
			}
		}
	}
}

func TestClassifyTransport(t *testing.T) {
	client := &http.Client{Timeout: 200 * time.Millisecond}
	get := func(url string) error {
		resp, err := client.Get(url)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		return err
	}

	// Refused: a port that was just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	if k := classifyTransport(get("http://" + closed)); k != "connection_refused" {
		t.Errorf("closed port: %q", k)
	}

	// Timeout: a server slower than the client's timeout.
	done := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}))
	defer slow.Close()
	defer close(done)
	if k := classifyTransport(get(slow.URL)); k != "timeout" {
		t.Errorf("slow server: %q", k)
	}

	// Reset: a server that aborts the connection with RST (linger 0).
	rst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}))
	defer rst.Close()
	if k := classifyTransport(get(rst.URL)); k != "connection_reset" && k != "eof" {
		t.Errorf("reset: %q", k)
	}

	// EOF: the server closes the connection without answering.
	eof := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer eof.Close()
	if k := classifyTransport(get(eof.URL)); k != "eof" {
		t.Errorf("closed without answer: %q", k)
	}

	if k := classifyTransport(context.Canceled); k != "canceled" {
		t.Errorf("canceled: %q", k)
	}
	if k := classifyTransport(io.ErrClosedPipe); k != "other" {
		t.Errorf("other: %q", k)
	}
}

func TestErrorCodeAndOutcome(t *testing.T) {
	if c := errorCode(client.DecodeError(503, nil, []byte(`{"error":{"code":"overloaded","message":"x"}}`), "")); c != "overloaded" {
		t.Errorf("code %q", c)
	}
	if c := errorCode(client.DecodeError(502, nil, []byte(`<html>bad gateway</html>`), "")); c != "(none)" {
		t.Errorf("non-JSON code %q", c)
	}
	notFound := outcome{status: 404, code: "session_not_found"}
	if !notFound.okEmpty(opGet) || !notFound.ok(opState) || notFound.ok(opPut) {
		t.Error("404 session_not_found: ok-empty on reads only")
	}
	if (outcome{status: 404, code: "not_found"}).ok(opGet) {
		t.Error("404 not_found (wrong route) must be an error")
	}
	if !(outcome{status: 201}).ok(opAppend) || (outcome{status: 503, code: "overloaded"}).ok(opAppend) || (outcome{transport: "timeout"}).ok(opGet) {
		t.Error("2xx ok, 503 and transport errors not")
	}
}
