package httpapi_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sessiond/sessiond/auth"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/internal/apispec"
	"github.com/sessiond/sessiond/shard"
)

// codesTheDocumentRefuses are the errors for requests whose parameters or
// body break a rule the OpenAPI document states (a pattern, a range, a
// required member), so the document must refuse the request too. The other
// 400s depend on more than the request's shape (an id already stored, a
// wait over 60s, a shard number above the shard count).
var codesTheDocumentRefuses = []string{
	"invalid_session_id", "invalid_json", "invalid_message", "too_many_messages", "invalid_fields",
	"invalid_field_name", "messages_not_allowed", "invalid_consistency", "invalid_limit", "invalid_after",
	"invalid_prefix", "invalid_if_match", "invalid_position", "invalid_expiry", "invalid_alarm", "content_too_large",
}

// contract sends requests to real servers and checks every answer against
// the OpenAPI document, remembering which operations and error codes were
// seen in answers that matched it.
type contract struct {
	t    *testing.T
	spec *apispec.Spec

	mu    sync.Mutex
	ops   map[string][]int // operation → statuses seen
	codes map[string]bool
}

func newContract(t *testing.T) *contract {
	spec, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	return &contract{t: t, spec: spec, ops: map[string][]int{}, codes: map[string]bool{}}
}

// target is one HTTP server over the test's node, with headers every
// request to it carries (a token).
type target struct {
	url    string
	client *http.Client
	header []string
}

// send makes one request, checks the answer against the document and
// returns it. body and hdr are as node.request takes them.
func (c *contract) send(tg *target, method, path string, body any, hdr ...string) *response {
	c.t.Helper()
	hdr = append(slices.Clone(tg.header), hdr...)
	req := (&node{url: tg.url}).request(method, path, body, hdr...)
	resp, err := tg.client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	r := &response{Method: method, Path: path, Status: resp.StatusCode, Header: resp.Header, Body: data}
	c.record(req, r)
	return r
}

// record checks r against the document and counts what it covered.
func (c *contract) record(req *http.Request, r *response) {
	c.t.Helper()
	got, err := c.spec.CheckResponse(req, r.Status, r.Header, r.Body)
	if err != nil {
		c.t.Errorf("answer does not match the OpenAPI document: %v", err)
		return
	}
	switch {
	case r.Status < 400:
		if err := c.spec.CheckRequest(req); err != nil {
			c.t.Errorf("the node took a request the OpenAPI document refuses: %v", err)
		}
	case slices.Contains(codesTheDocumentRefuses, got.Code):
		if c.spec.CheckRequest(req) == nil {
			c.t.Errorf("%s: the node refused it (%s), but the OpenAPI document allows it", r, got.Code)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if got.Operation != "" {
		c.ops[got.Operation] = append(c.ops[got.Operation], r.Status)
	}
	if got.Code != "" {
		c.codes[got.Code] = true
	}
}

// expect sends a request and fails unless it is answered with status and,
// for an error, code.
func (c *contract) expect(tg *target, status int, code, method, path string, body any, hdr ...string) *response {
	c.t.Helper()
	r := c.send(tg, method, path, body, hdr...)
	if code != "" {
		wantError(c.t, r, status, code)
	} else {
		wantStatus(c.t, r, status)
	}
	return r
}

// readmeErrorCodes returns the codes of the README's error table: the
// second column of every row, and any code of the document named in the
// third (501 unsupported_transfer_encoding shares a row).
func readmeErrorCodes(t *testing.T, documented []string) []string {
	f, err := os.Open(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile(`^\| [45]\d\d \| ([^|]+) \|(.*)$`)
	quoted := regexp.MustCompile("`([a-z_]+)`")
	var codes []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "### Errors":
			in = true
		case in && strings.HasPrefix(line, "## "):
			in = false
		}
		m := row.FindStringSubmatch(line)
		if !in || m == nil {
			continue
		}
		for _, q := range quoted.FindAllStringSubmatch(m[1], -1) {
			codes = append(codes, q[1])
		}
		for _, q := range quoted.FindAllStringSubmatch(m[2], -1) {
			if slices.Contains(documented, q[1]) {
				codes = append(codes, q[1])
			}
		}
	}
	if len(codes) < 30 {
		t.Fatalf("found only %d codes in README.md's error table: %v", len(codes), codes)
	}
	return codes
}

// faultStore is the node's real store with failures it can be told to
// inject: the shard errors a single healthy node never returns (lost
// leadership, a full disk elsewhere, …) pass through the real HTTP layer
// as they would from a sick cluster.
type faultStore struct {
	httpapi.Store
	mu       sync.Mutex
	err      error
	notReady bool
}

func (f *faultStore) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *faultStore) injected() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *faultStore) Apply(ctx context.Context, sh uint32, cmd *fsm.Command) (*fsm.Result, error) {
	if err := f.injected(); err != nil {
		return nil, err
	}
	return f.Store.Apply(ctx, sh, cmd)
}

func (f *faultStore) Read(ctx context.Context, sh uint32, c shard.Consistency) (*fsm.FSM, error) {
	if err := f.injected(); err != nil {
		return nil, err
	}
	return f.Store.Read(ctx, sh, c)
}

func (f *faultStore) Ready() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.notReady && f.Store.Ready()
}

// faultCluster is the node's real cluster view plus three members, and a
// leadership transfer that fails. The members are gone (dead), mirror
// (alive, at the HTTP address of the test's node, which answers for it)
// and silent (alive, at an address nothing listens on).
type faultCluster struct {
	httpapi.Cluster
	mirror, silent string
}

func (f faultCluster) Members() []cluster.MemberStatus {
	return append(f.Cluster.Members(),
		cluster.MemberStatus{ID: "gone", State: cluster.StateDead},
		cluster.MemberStatus{ID: "mirror", State: cluster.StateAlive, HTTPAddr: f.mirror},
		cluster.MemberStatus{ID: "silent", State: cluster.StateAlive, HTTPAddr: f.silent})
}

func (f faultCluster) TransferLeadership(sh uint32, to string) error {
	if to == "gone" {
		return errors.New("node gone is not a voter of this shard")
	}
	return f.Cluster.TransferLeadership(sh, to)
}

// tokens writes a token file with one token per scope and returns an
// authenticator over it.
func tokens(t *testing.T) *auth.Authenticator {
	path := filepath.Join(t.TempDir(), "tokens")
	text := "read read-token-0123456789abcdef\ndata data-token-0123456789abcdef\nadmin admin-token-0123456789abcdef\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	tf, err := auth.LoadTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return &auth.Authenticator{Tokens: tf}
}

// strictServer serves the test's node again, through faultStore and
// faultCluster, with tokens, a session write rate of one write and one
// stream or blocking read at a time.
func strictServer(t *testing.T, n *node) (*target, *faultStore) {
	fs := &faultStore{Store: n.node}
	cfg := httpapi.DefaultConfig()
	cfg.Logger = testLogger(t)
	cfg.Version = "test"
	cfg.Cluster = faultCluster{Cluster: n.node, mirror: n.srv.Listener.Addr().String(), silent: deadAddr(t)}
	cfg.Auth = tokens(t)
	cfg.SessionWriteRate, cfg.SessionWriteBurst = 0.001, 1
	cfg.MaxStreams = 1
	cfg.OnDrain = func() {} // the drain is accepted; this test's node stays
	srv := httptest.NewServer(httpapi.New(fs, cfg))
	t.Cleanup(srv.Close)
	return &target{url: srv.URL, client: n.client, header: []string{"Authorization", "Bearer admin-token-0123456789abcdef"}}, fs
}

// apiCall is one request of a table and the answer it must get: status and,
// for an error, code. hdr holds header name/value pairs.
type apiCall struct {
	status       int
	code         string
	method, path string
	body         any
	hdr          []string
}

// run sends the calls in order, each checked as expect does.
func (c *contract) run(tg *target, calls ...apiCall) {
	c.t.Helper()
	for _, k := range calls {
		c.expect(tg, k.status, k.code, k.method, k.path, k.body, k.hdr...)
	}
}

// elsewhereCluster places every shard's leader on another node, at addr,
// and no replica here: every session request is forwarded.
type elsewhereCluster struct {
	httpapi.Cluster
	addr string
}

func (e elsewhereCluster) HasReplica(uint32) bool { return false }

func (e elsewhereCluster) Leader(uint32) (string, string, bool) { return "n9", e.addr, false }

// forwardingServer serves the test's node as one that holds no replica and
// whose shard leaders are at an address nothing listens on.
func forwardingServer(t *testing.T, n *node) *target {
	cfg := httpapi.DefaultConfig()
	cfg.Logger = testLogger(t)
	cfg.Cluster = elsewhereCluster{Cluster: n.node, addr: deadAddr(t)}
	srv := httptest.NewServer(httpapi.New(n.node, cfg))
	t.Cleanup(srv.Close)
	// Redirects to the leader are checked, not followed.
	return &target{url: srv.URL, client: noRedirects(n.client)}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// noRedirects is a client like client that returns redirects instead of
// following them.
func noRedirects(client *http.Client) *http.Client {
	return &http.Client{Transport: client.Transport, Timeout: client.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
