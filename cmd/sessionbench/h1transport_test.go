package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newTestH1Transport() (*h1Transport, *atomic.Int64) {
	var dials atomic.Int64
	d := &net.Dialer{Timeout: time.Second}
	return newH1Transport(func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}, 4), &dials
}

// TestTheLeanTransportKeepsItsConnectionAlive: requests one after another
// reuse one connection, each request's body reaches the server and each
// response's body comes back whole.
func TestTheLeanTransportKeepsItsConnectionAlive(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("echo:" + string(b) + strings.Repeat("x", 20_000)))
	}))
	defer srv.Close()
	tr, dials := newTestH1Transport()
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	for i := range 5 {
		body := strings.Repeat("b", i*1000)
		resp, err := hc.Post(srv.URL+"/p", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Method") != "POST" || resp.Proto != "HTTP/1.1" {
			t.Fatalf("response %d: %d %q %s", i, resp.StatusCode, resp.Header.Get("X-Method"), resp.Proto)
		}
		if want := "echo:" + body + strings.Repeat("x", 20_000); string(got) != want {
			t.Fatalf("response %d: body of %d bytes, want %d", i, len(got), len(want))
		}
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d connections dialed for five requests in turn, want 1", n)
	}
}

// TestTheLeanTransportDialsAgainAfterTheServerCloses: a response that
// closes its connection is read whole and the next request gets a new one.
func TestTheLeanTransportDialsAgainAfterTheServerCloses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "bye")
	}))
	defer srv.Close()
	tr, dials := newTestH1Transport()
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	for range 3 {
		resp, err := hc.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != "bye" {
			t.Fatalf("body %q", got)
		}
	}
	if n := dials.Load(); n != 3 {
		t.Fatalf("%d connections dialed, want 3 (one per response that closed its own)", n)
	}
}

// TestTheLeanTransportGivesUpAtTheRequestsDeadline: a server that does not
// answer fails the request at its context's deadline, and the connection
// it was on is not used again.
func TestTheLeanTransportGivesUpAtTheRequestsDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	defer close(release)
	tr, dials := newTestH1Transport()
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/slow", nil)
	start := time.Now()
	_, err := hc.Do(req)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a request the server never answered: %v, want a timeout", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("gave up after %v", waited)
	}
	resp, err := hc.Get(srv.URL + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d connections dialed, want 2 (the timed-out one is closed)", n)
	}
}

// TestTheLeanTransportRefusesHTTPS: it speaks plain HTTP/1.1 only, and
// parseFlags keeps it away from https:// addresses and --h2c.
func TestTheLeanTransportRefusesHTTPS(t *testing.T) {
	tr, _ := newTestH1Transport()
	req, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1:1/", nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, errH1Scheme) {
		t.Fatalf("https request: %v", err)
	}
	for _, tc := range []struct {
		args []string
		lean bool
	}{
		{[]string{"--addrs", "http://127.0.0.1:1"}, true},
		{[]string{"--addrs", "127.0.0.1:1"}, true},
		{[]string{"--addrs", "http://127.0.0.1:1", "--http1", "net/http"}, false},
		{[]string{"--addrs", "http://127.0.0.1:1,https://127.0.0.1:2"}, false},
		{[]string{"--addrs", "http://127.0.0.1:1", "--h2c"}, false},
	} {
		cfg, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if cfg.leanHTTP1 != tc.lean {
			t.Errorf("%v: lean client %v, want %v", tc.args, cfg.leanHTTP1, tc.lean)
		}
	}
	if _, err := parseFlags([]string{"--http1", "fast"}, io.Discard); err == nil {
		t.Error("--http1 fast was accepted")
	}
}

// TestTheLeanTransportDropsConnectionsIdleTooLong: a server closes a
// connection that sat idle past its idle timeout; one idle longer than the
// transport's maxIdleAge is not used again, so the request after a pause
// does not fail on a connection the server already closed.
func TestTheLeanTransportDropsConnectionsIdleTooLong(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.IdleTimeout = 100 * time.Millisecond
	srv.Start()
	defer srv.Close()
	tr, dials := newTestH1Transport()
	tr.maxIdleAge = 50 * time.Millisecond
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	for i := range 3 {
		resp, err := hc.Get(srv.URL)
		if err != nil {
			t.Fatalf("request %d after a pause longer than the server's idle timeout: %v", i, err)
		}
		resp.Body.Close()
		time.Sleep(300 * time.Millisecond)
	}
	if n := dials.Load(); n != 3 {
		t.Fatalf("%d connections dialed, want 3 (each one idle too long for the next request)", n)
	}
}
