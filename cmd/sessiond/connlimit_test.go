package main

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Beyond --max-conns a new client connection is answered 503 overloaded in
// the JSON envelope and closed; closing a held connection frees its slot.
func TestConnectionsBeyondTheLimitAreRefusedAndSlotsComeBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newConnLimitListener(ln, 2, 1, true, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(l)
	defer srv.Close()

	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	roundTrip := func(c net.Conn) (*http.Response, string) {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	a, b := dial(), dial()
	defer a.Close()
	for _, c := range []net.Conn{a, b} { // both held, served
		if resp, body := roundTrip(c); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("held connection: %d %s", resp.StatusCode, body)
		}
	}
	extra := dial()
	resp, body := roundTrip(extra)
	extra.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"code":"overloaded"`) {
		t.Fatalf("third connection: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	b.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dial()
		resp, body := roundTrip(c)
		c.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection's slot never came back: %d %s", resp.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if l.refused.Load() == 0 {
		t.Fatal("refusals not counted")
	}
}

// One address may hold --max-conns-per-ip connections; others are not
// affected, and loopback is exempt.
func TestConnectionsPerAddressAreBoundedExceptLoopback(t *testing.T) {
	l := newConnLimitListener(nil, 100, 2, true, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range 2 {
		if why := l.admit("10.0.0.1"); why != "" {
			t.Fatalf("connection %d from 10.0.0.1 refused: %s", i, why)
		}
	}
	if why := l.admit("10.0.0.1"); !strings.Contains(why, "--max-conns-per-ip") {
		t.Fatalf("third connection from 10.0.0.1: %q", why)
	}
	if why := l.admit("10.0.0.2"); why != "" {
		t.Fatalf("another address refused: %s", why)
	}
	for range 10 {
		if why := l.admit("127.0.0.1"); why != "" {
			t.Fatalf("loopback refused: %s", why)
		}
	}
	l.release("10.0.0.1")
	if why := l.admit("10.0.0.1"); why != "" {
		t.Fatalf("after a release: %s", why)
	}
}
