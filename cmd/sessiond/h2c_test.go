package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// h2cClient speaks HTTP/2 over cleartext TCP with prior knowledge only, as
// sessionbench --h2c does, and counts the connections it dials.
func h2cClient(dials *atomic.Int64) *http.Client {
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			Protocols: protocols,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return dialer.DialContext(ctx, network, addr)
			},
		},
	}
}

// TestH2CAndHTTP1ShareTheClientPort runs a real node with the default
// flags: an HTTP/2 prior-knowledge client is answered in HTTP/2 and
// multiplexes concurrent requests over one connection, an HTTP/1.1 client
// is answered in HTTP/1.1 on the same port and sees the same data, both
// meet the same header size limit, and an open HTTP/2 connection does not
// hold up a clean SIGTERM shutdown.
func TestH2CAndHTTP1ShareTheClientPort(t *testing.T) {
	p := newProc(t, 2)
	p.start()
	var dials atomic.Int64
	h2 := h2cClient(&dials)
	session := p.url("/api/chat/session/h2c-1")

	// The first request opens the one connection the others then share.
	resp, err := h2.Post(session+"/messages", "application/json", strings.NewReader(`{"id":"m0","role":"user","content":"over h2c"}`))
	if err != nil {
		t.Fatalf("h2c append: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.ProtoMajor != 2 {
		t.Fatalf("h2c append = %d over %s, want 201 over HTTP/2.0", resp.StatusCode, resp.Proto)
	}
	const concurrent = 32
	var wg sync.WaitGroup
	for i := 1; i <= concurrent; i++ {
		wg.Go(func() {
			body := fmt.Sprintf(`{"id":"m%d","role":"user","content":"over h2c"}`, i)
			resp, err := h2.Post(session+"/messages", "application/json", strings.NewReader(body))
			if err != nil {
				t.Errorf("h2c append m%d: %v", i, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 || resp.ProtoMajor != 2 {
				t.Errorf("h2c append m%d = %d over %s, want 2xx over HTTP/2.0", i, resp.StatusCode, resp.Proto)
			}
		})
	}
	wg.Wait()
	if n := dials.Load(); n != 1 {
		t.Errorf("%d h2c requests dialed %d connections, want 1 shared", concurrent+1, n)
	}

	// HTTP/1.1 on the same port reads what HTTP/2 wrote.
	resp, err = client.Get(session + "/messages?limit=1000")
	if err != nil {
		t.Fatalf("HTTP/1.1 read: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
		t.Fatalf("HTTP/1.1 read = %d over %s, want 200 over HTTP/1.1", resp.StatusCode, resp.Proto)
	}
	if n := strings.Count(string(body), `"content":"over h2c"`); n != concurrent+1 {
		t.Fatalf("HTTP/1.1 read found %d of the %d h2c appends: %.300s", n, concurrent+1, body)
	}

	// Both protocols refuse a header block over the server's limit: HTTP/1.1
	// with 431, HTTP/2 before it is sent (the client knows the server's
	// SETTINGS_MAX_HEADER_LIST_SIZE) or with 431. (net/http's HTTP/1 server
	// reads up to 4 KiB past MaxHeaderBytes, so the header is well over.)
	const bigHeader = 2 * httpMaxHeaderBytes
	for name, c := range map[string]*http.Client{"HTTP/1.1": client, "h2c": h2} {
		req, _ := http.NewRequest(http.MethodGet, p.url("/healthz"), nil)
		req.Header.Set("X-Big", strings.Repeat("x", bigHeader))
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("%s with a %d-byte header = %d over %s, want 431 or a refusal", name, bigHeader, resp.StatusCode, resp.Proto)
			}
		}
	}

	// The h2c connection is still open and idle: shutdown sends it a GOAWAY
	// rather than waiting the idle timeout out.
	start := time.Now()
	if code := p.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
	if out := p.output(); strings.Contains(out, "http shutdown") {
		t.Fatalf("HTTP shutdown did not finish cleanly with an open h2c connection (%v):\n%s", time.Since(start), out)
	}
}

// TestH2CServerSettings reads the HTTP/2 SETTINGS a real node sends after
// the client preface: the stream and header bounds it advertises are the
// ones newHTTPServer sets, not whatever net/http defaults to.
func TestH2CServerSettings(t *testing.T) {
	p := newProc(t, 1)
	p.start()
	conn, err := net.DialTimeout("tcp", p.httpAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The preface, then an empty SETTINGS frame (type 0x4) on stream 0.
	if _, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	var hdr [9]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		t.Fatalf("reading the server's first frame: %v", err)
	}
	length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	if hdr[3] != 0x4 || hdr[4]&0x1 != 0 || length%6 != 0 || length > 1024 {
		t.Fatalf("first frame type %#x flags %#x length %d, want a SETTINGS frame", hdr[3], hdr[4], length)
	}
	payload := make([]byte, length)
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatal(err)
	}
	settings := map[uint16]uint32{}
	for b := payload; len(b) >= 6; b = b[6:] {
		settings[binary.BigEndian.Uint16(b)] = binary.BigEndian.Uint32(b[2:])
	}
	const maxConcurrentStreams, maxHeaderListSize = 0x3, 0x6
	if got := settings[maxConcurrentStreams]; got != h2MaxConcurrentStreams {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want %d (all settings %v)", got, h2MaxConcurrentStreams, settings)
	}
	// net/http adds room for the per-field overhead HTTP/2 counts (32
	// bytes each, for 10 fields) to the HTTP/1 limit.
	if got, want := settings[maxHeaderListSize], uint32(httpMaxHeaderBytes+10*32); got != want {
		t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE = %d, want %d (all settings %v)", got, want, settings)
	}
}

// TestH2COffServesHTTP1Only: with --h2c=false an HTTP/2 prior-knowledge
// client gets no HTTP/2 answer, and HTTP/1.1 works as before.
func TestH2COffServesHTTP1Only(t *testing.T) {
	p := newProc(t, 1)
	p.extraArgs = []string{"--h2c=false"}
	p.start()
	var dials atomic.Int64
	resp, err := h2cClient(&dials).Get(p.url("/healthz"))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("h2c request to a node with --h2c=false = %d over %s, want a failure", resp.StatusCode, resp.Proto)
	}
	resp, err = client.Post(p.url("/api/chat/session/h1-only/messages"), "application/json",
		bytes.NewReader([]byte(`{"role":"user","content":"hi"}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.ProtoMajor != 1 {
		t.Fatalf("HTTP/1.1 append = %d over %s, want 201 over HTTP/1.1", resp.StatusCode, resp.Proto)
	}
}
