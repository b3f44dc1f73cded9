//go:build e2e

package e2e

// Phase 0, the cluster as someone else on the host sees it: its published
// ports, reached without the token, with a forged one, and without TLS.

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func (s *suite) exposure(t *testing.T) {
	// Trusts the CA, so the TLS handshake succeeds and what answers is
	// sessiond's own check of the token; sends none.
	anonCreds := creds
	anonCreds.Token = ""
	anonRT, err := anonCreds.Apply(newTransport())
	s.check(t, err)
	anon := &http.Client{Timeout: requestTimeout, Transport: anonRT}
	plain := &http.Client{Timeout: requestTimeout, Transport: newTransport()}
	forged := http.Header{"Authorization": {"Bearer " + strings.Repeat("A", 43)}}
	session := fmt.Sprintf("exposure-%d", time.Now().UnixNano())

	for _, n := range base {
		u := s.e.urls[n]
		if !strings.HasPrefix(u, "https://") {
			s.w.failf("%s is reached at %s: the compose cluster must serve HTTPS", n, u)
			continue
		}
		for _, a := range []struct {
			what, method, path string
			body               []byte
			header             http.Header
		}{
			{"no token", "GET", "/v1/cluster", nil, nil},
			{"no token", "POST", "/v1/nodes/" + n + "/drain", nil, nil},
			{"no token", "POST", "/api/chat/session/" + session + "/messages", []byte(`{"role":"user","content":"anonymous"}`), nil},
			{"a forged token", "GET", "/api/chat/session/" + session, nil, forged},
		} {
			r := doWith(anon, a.method, u+a.path, a.body, a.header)
			if r.status != http.StatusUnauthorized || r.code != "unauthorized" {
				s.w.failf("%s %s to %s with %s: %s, want 401 unauthorized", a.method, a.path, n, a.what, r)
			}
		}
		// The write refused above must not have happened.
		if r := do("GET", u+"/api/chat/session/"+session, nil); r.status != http.StatusNotFound {
			s.w.failf("GET %s with the admin token after a write without one: %s, want 404", session, r)
		}
		// The health checks stay open for orchestrators; they say nothing.
		if r := doWith(anon, "GET", u+"/readyz", nil, nil); r.status != http.StatusOK {
			s.w.failf("GET /readyz of %s without a token: %s, want 200", n, r)
		}

		// Plain HTTP on the same port: Go's TLS server answers a bare
		// "400 Client sent an HTTP request to an HTTPS server" and closes;
		// sessiond itself never sees the request.
		hostport := strings.TrimPrefix(u, "https://")
		r := doWith(plain, "GET", "http://"+hostport+"/v1/cluster", nil, nil)
		plainHTTP := r.class()
		if r.err == nil {
			plainHTTP = fmt.Sprintf("%s %.60q", plainHTTP, bytes.TrimSpace(r.body))
			if r.status != http.StatusBadRequest || r.header.Get("X-Sessiond-Node") != "" {
				s.w.failf("plain HTTP to %s answered %s (X-Sessiond-Node %q): the port must speak TLS only", n, r, r.header.Get("X-Sessiond-Node"))
			}
		}

		// Only the HTTP port is published, and only on loopback unless
		// SESSIOND_BIND asked for more.
		out, err := docker(15*time.Second, "port", s.e.mustID(t, n))
		s.check(t, err)
		for _, line := range strings.Split(out, "\n") {
			port, addr, _ := strings.Cut(strings.TrimSpace(line), " -> ")
			host, _, _ := net.SplitHostPort(addr)
			if port != "8080/tcp" {
				s.w.failf("%s publishes %s (%s): only the HTTP port 8080/tcp may be", n, port, line)
			}
			if bind := os.Getenv("SESSIOND_BIND"); (bind == "" || bind == "127.0.0.1") && host != "127.0.0.1" {
				s.w.failf("%s publishes %s on %s: by default it binds 127.0.0.1 only", n, port, addr)
			}
		}
		s.w.note("%s: 401 without a token or with a forged one; plain HTTP: %s; docker port: %s", n, plainHTTP, strings.ReplaceAll(out, "\n", "; "))
	}
}
