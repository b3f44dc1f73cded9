package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/apispec"
)

// rawRequest writes req on a new connection and reads the response.
func rawRequest(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(conn, req) // a 431 may come back before the whole request is written
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %.60q: %v", req, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// Requests net/http refuses before any handler runs still get the API's
// JSON error envelope, never a text/plain body, as the OpenAPI document
// describes it for their status.
func TestUnparsableRequestsGetJSONErrors(t *testing.T) {
	spec, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	p := newProc(t, 1)
	p.start()
	cases := []struct {
		name, req string
		status    int
		code      string
	}{
		{"headers over the limit", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 80<<10) + "\r\n\r\n", 431, "headers_too_large"},
		{"malformed request line", "GARBAGE GARBAGE GARBAGE GARBAGE\r\n\r\n", 400, "malformed_request"},
		{"no Host header", "GET /healthz HTTP/1.1\r\n\r\n", 400, "malformed_request"},
		{"malformed header", "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400, "malformed_request"},
		{"unknown transfer encoding", "POST /api/chat/session/s/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "unsupported_transfer_encoding"},
	}
	for _, c := range cases {
		resp, body := rawRequest(t, p.httpAddr(), c.req)
		var e struct {
			Error struct{ Code, Message string }
		}
		if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/json" ||
			json.Unmarshal(body, &e) != nil || e.Error.Code != c.code || e.Error.Message == "" {
			t.Errorf("%s: %d %s %q, want %d JSON %s", c.name, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.status, c.code)
		}
		if _, err := spec.CheckError(resp.StatusCode, resp.Header, body); err != nil {
			t.Errorf("%s: the answer does not match the OpenAPI document: %v", c.name, err)
		}
	}
	// Well-formed requests are untouched.
	if resp, body := rawRequest(t, p.httpAddr(), "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); resp.StatusCode != 200 || !strings.Contains(string(body), "ok") {
		t.Fatalf("healthz = %d %s", resp.StatusCode, body)
	}
}
