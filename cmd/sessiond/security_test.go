package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tokens every secured test cluster uses, one per scope.
const (
	adminToken = "admin-0123456789abcdef"
	dataToken  = "data-0123456789abcdef"
	readToken  = "read-0123456789abcdef"
)

func writeTokenFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	body := "# scope token\nadmin " + adminToken + "\ndata " + dataToken + "\nread " + readToken + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startCluster starts n joined nodes n1..nn with the same extra flags.
func startCluster(t *testing.T, n, shards int, extra ...string) []*proc {
	t.Helper()
	return startClusterWith(t, n, shards, func(_ int, p *proc) { p.extraArgs = append(p.extraArgs, extra...) })
}

// do sends one request with an optional bearer token and returns the status
// and body.
func do(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	return doWith(t, client, method, url, token, body)
}

func doWith(t *testing.T, c *http.Client, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func errorCode(b []byte) string {
	var e struct{ Error struct{ Code string } }
	_ = json.Unmarshal(b, &e)
	return e.Error.Code
}

// An attacker who reaches the HTTP port of a node with tokens configured
// changes nothing: every session, /v1 write and /internal route refuses a
// request without a token (401) or with a token of the wrong scope (403),
// while the cluster itself, whose nodes call each other's internal routes,
// keeps working and forwards clients' requests with their tokens.
func TestTokensRefuseEveryUnauthenticatedRoute(t *testing.T) {
	procs := startCluster(t, 3, 4, "--token-file", writeTokenFile(t))
	n1, n2 := procs[0], procs[1]

	// Health checks stay open for orchestrators.
	for _, path := range []string{"/healthz", "/readyz"} {
		code, body := do(t, http.MethodGet, n1.url(path), "", "")
		for deadline := time.Now().Add(10 * time.Second); code == http.StatusServiceUnavailable && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond) // /readyz during an election: open, just not ready
			code, body = do(t, http.MethodGet, n1.url(path), "", "")
		}
		if code != http.StatusOK {
			t.Fatalf("GET %s without a token = %d %s, want 200", path, code, body)
		}
	}

	msg := `{"role":"user","content":"forged"}`
	attacks := []struct{ method, path, body string }{
		{http.MethodPost, "/api/chat/session/victim/messages", msg},
		{http.MethodPut, "/api/chat/session/victim", `{"fields":{"a":1}}`},
		{http.MethodPatch, "/api/chat/session/victim", `{"a":1}`},
		{http.MethodPut, "/api/chat/session/victim/state/bookingInfo", `{"x":1}`},
		{http.MethodDelete, "/api/chat/session/victim", ""},
		{http.MethodGet, "/api/chat/session/victim", ""},
		{http.MethodGet, "/v1/cluster", ""},
		{http.MethodGet, "/v1/openapi.json", ""},
		{http.MethodPost, "/v1/nodes/n2/drain", ""},
		{http.MethodPost, "/v1/shards/0/transfer-leadership", ""},
		{http.MethodPost, "/internal/v1/shards/0/replica", ""},
		{http.MethodDelete, "/internal/v1/shards/0/replica", ""},
		{http.MethodGet, "/internal/v1/shards/0/membership", ""},
		{http.MethodGet, "/v1/backup", ""},
		{http.MethodPost, "/v1/restore", "x"},
		{http.MethodGet, "/internal/v1/shards/0/snapshot", ""},
		{http.MethodPost, "/internal/v1/shards/0/restore?index=1", "x"},
		{http.MethodGet, "/no/such/route", ""},
	}
	for _, a := range attacks {
		for _, token := range []string{"", "not-a-valid-token-at-all"} {
			code, body := do(t, a.method, n1.url(a.path), token, a.body)
			if code != http.StatusUnauthorized || errorCode(body) != "unauthorized" {
				t.Errorf("%s %s with token %q = %d %s, want 401 unauthorized", a.method, a.path, token, code, body)
			}
		}
	}
	wrongScope := []struct{ method, path, token, body string }{
		{http.MethodPost, "/api/chat/session/victim/messages", readToken, msg},
		{http.MethodGet, "/v1/cluster", dataToken, ""},
		{http.MethodGet, "/v1/openapi.json", dataToken, ""},
		{http.MethodPost, "/v1/nodes/n2/drain", dataToken, ""},
		{http.MethodPost, "/v1/nodes/n2/drain", readToken, ""},
		{http.MethodPost, "/v1/shards/0/transfer-leadership", readToken, ""},
		{http.MethodPost, "/internal/v1/shards/0/replica", dataToken, ""},
		{http.MethodPost, "/internal/v1/shards/0/replica", readToken, ""},
		{http.MethodGet, "/v1/backup", readToken, ""},
		{http.MethodGet, "/v1/backup", dataToken, ""},
		{http.MethodPost, "/v1/restore", readToken, "x"},
		{http.MethodGet, "/internal/v1/shards/0/snapshot", readToken, ""},
		{http.MethodPost, "/internal/v1/shards/0/restore?index=1", dataToken, "x"},
	}
	for _, a := range wrongScope {
		code, body := do(t, a.method, n1.url(a.path), a.token, a.body)
		if code != http.StatusForbidden || errorCode(body) != "forbidden" {
			t.Errorf("%s %s with a token of another scope = %d %s, want 403 forbidden", a.method, a.path, code, body)
		}
	}

	// Nothing changed: the session does not exist and every node still runs.
	if code, body := do(t, http.MethodGet, n1.url("/api/chat/session/victim"), dataToken, ""); code != http.StatusNotFound {
		t.Fatalf("victim session after the attacks = %d %s, want 404", code, body)
	}
	time.Sleep(3 * time.Second) // an accepted drain exits the node within this
	for _, p := range procs {
		if !p.running() {
			t.Fatalf("a node exited after unauthenticated requests:\n%s", p.output())
		}
	}

	// Clients with the right scope are served on every node, forwarded or
	// not.
	for i, p := range procs {
		s := fmt.Sprintf("/api/chat/session/s-%d/messages", i)
		if code, body := do(t, http.MethodPost, p.url(s), dataToken, msg); code != http.StatusOK && code != http.StatusCreated {
			t.Fatalf("append with the data token on %s = %d %s", p.httpAddr(), code, body)
		}
		if code, body := do(t, http.MethodGet, n2.url(s), adminToken, ""); code != http.StatusOK || !bytes.Contains(body, []byte("forged")) {
			t.Fatalf("read with the admin token = %d %s", code, body)
		}
	}
	if code, body := do(t, http.MethodGet, n2.url("/v1/cluster"), readToken, ""); code != http.StatusOK {
		t.Fatalf("GET /v1/cluster with the read token = %d %s", code, body)
	}
	if code, body := do(t, http.MethodGet, n2.url("/v1/openapi.json"), readToken, ""); code != http.StatusOK || !bytes.Contains(body, []byte(`"openapi": "3.1.0"`)) {
		t.Fatalf("GET /v1/openapi.json with the read token = %d %.80s", code, body)
	}
}

// SIGHUP reloads the token file: a token removed from it stops working and
// a new one works, without a restart; a broken file keeps the tokens in
// force.
func TestSIGHUPReloadsTokens(t *testing.T) {
	path := writeTokenFile(t)
	p := newProc(t, 1)
	p.extraArgs = []string{"--token-file", path}
	p.start()
	url := p.url("/api/chat/session/s/messages")
	body := `{"role":"user","content":"hi"}`
	if code, b := do(t, http.MethodPost, url, dataToken, body); code != http.StatusCreated {
		t.Fatalf("append with the data token = %d %s", code, b)
	}
	const newToken = "rotated-0123456789abcdef"
	if err := os.WriteFile(path, []byte("admin "+adminToken+"\ndata "+newToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reload := func() {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	reload()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := do(t, http.MethodPost, url, newToken, body)
		if code == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new token is refused after SIGHUP: %d\n%s", code, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := do(t, http.MethodPost, url, dataToken, body); code != http.StatusUnauthorized {
		t.Fatalf("a token removed from the file still works after SIGHUP: %d", code)
	}
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reload()
	time.Sleep(500 * time.Millisecond)
	if code, _ := do(t, http.MethodPost, url, newToken, body); code != http.StatusCreated {
		t.Fatalf("a broken token file dropped the tokens in force: %d", code)
	}
	if !p.running() || !strings.Contains(p.output(), "reloading tokens failed") {
		t.Fatalf("a broken token file was not reported, or stopped the node:\n%s", p.output())
	}
}
