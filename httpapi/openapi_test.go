package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/backup"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/internal/apispec"
	"github.com/sessiond/sessiond/shard"
)

// Codes net/http answers before any handler runs; cmd/sessiond turns them
// into the envelope and its TestUnparsableRequestsGetJSONErrors checks
// them against the document.
var codesCheckedByCmdSessiond = []string{"malformed_request", "headers_too_large", "unsupported_transfer_encoding"}

// Operations a single node cannot complete, seen with their errors only: it
// has no other node to hand leadership to, and it drops a replica only
// after the replica left the shard's configuration, which needs another
// node to take its place.
var operationsWithoutSuccessOnOneNode = []string{
	"POST /v1/shards/{shard}/transfer-leadership",
	"DELETE /internal/v1/shards/{shard}/replica",
}

// Operations whose only answer without an error is a redirect.
var operationsThatRedirect = []string{"GET /ui"}

// documentedAs names the operations of the document that stand for a route
// OpenAPI cannot write: echo's wildcard for the console's files is the page
// and the two folders of files, and TestRealResponsesMatchTheOpenAPIDocument
// fetches every file of ui/static through them.
var documentedAs = map[string][]string{
	"GET /ui/*":  {"GET /ui/", "GET /ui/{file}", "GET /ui/js/{module}"},
	"HEAD /ui/*": {"HEAD /ui/", "HEAD /ui/{file}", "HEAD /ui/js/{module}"},
}

// Every route echo registers is in the OpenAPI document, and every
// operation of the document is a registered route: the document cannot
// miss a route or describe one that does not exist.
func TestOpenAPIDocumentNamesEveryRegisteredRouteAndNoOther(t *testing.T) {
	n := startNode(t)
	spec, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`:([A-Za-z]+)`)
	var registered []string
	for _, r := range n.api.RoutesForTest() {
		r = param.ReplaceAllString(r, "{$1}")
		if ops, ok := documentedAs[r]; ok {
			registered = append(registered, ops...)
		} else {
			registered = append(registered, r)
		}
	}
	documented := spec.Operations()
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is registered but not in httpapi/openapi.json", r)
		}
	}
	for _, op := range documented {
		if !slices.Contains(registered, op) {
			t.Errorf("httpapi/openapi.json describes %s, which is no registered route", op)
		}
	}
}

// Real answers of a running node, to every operation of the document and
// with every error code of the README's table, match the OpenAPI document:
// status, declared headers and body. Errors a healthy single node never
// gives (lost leadership, a full disk, a dead or unreachable member) are
// injected below the HTTP layer, so they still take the real path through
// it. A restore succeeds while the node is empty, so that comes first.
func TestRealResponsesMatchTheOpenAPIDocument(t *testing.T) {
	n := startNode(t)
	c := newContract(t)
	tg := &target{url: n.url, client: n.client}

	served := c.expect(tg, 200, "", "GET", "/v1/openapi.json", nil)
	if !bytes.Equal(served.Body, httpapi.OpenAPI()) {
		t.Fatalf("/v1/openapi.json serves %d bytes, not the embedded document", len(served.Body))
	}

	sh := n.node.ShardFor("doc-1")
	empty := exerciseRestoreWhileEmpty(c, tg, sh)
	exerciseSessions(c, tg)
	exerciseOperations(c, tg)
	exerciseBackup(c, tg, sh, empty)
	exerciseConsole(c, &target{url: n.url, client: noRedirects(n.client)})
	exerciseBadInput(c, tg)
	strict, faults := strictServer(t, n)
	exerciseStrictServer(c, strict, faults)
	exerciseForwarding(c, forwardingServer(t, n))

	for _, op := range c.spec.Operations() {
		statuses := c.ops[op]
		if len(statuses) == 0 {
			t.Errorf("no answer to %s was checked", op)
			continue
		}
		success := func(s int) bool { return s < 300 || (s < 400 && slices.Contains(operationsThatRedirect, op)) }
		if !slices.ContainsFunc(statuses, success) && !slices.Contains(operationsWithoutSuccessOnOneNode, op) {
			t.Errorf("%s: no success was checked, only %v", op, statuses)
		}
	}
	documented := c.spec.ErrorCodes()
	for _, code := range readmeErrorCodes(t, documented) {
		switch {
		case !slices.Contains(documented, code):
			t.Errorf("README code %s is not in the document's ErrorCode", code)
		case slices.Contains(codesCheckedByCmdSessiond, code):
		case !c.codes[code]:
			t.Errorf("README code %s was not seen in a checked answer", code)
		}
	}
}

func exerciseSessions(c *contract, tg *target) {
	S := sessionPath("doc-1")
	first := `{"id":"m1","role":"user","content":"Find me a flight to Lisbon","meta":{"lang":"en"}}`
	c.expect(tg, 201, "", "POST", S+"/messages", first)
	c.expect(tg, 200, "", "POST", S+"/messages", first)
	c.expect(tg, 201, "", "POST", S+"/messages",
		`{"messages":[{"role":"assistant","content":"Which dates?"},{"role":"user","content":"May 3-7"}]}`, "Idempotency-Key", "turn-2")
	got := c.expect(tg, 200, "", "GET", S, nil)
	c.expect(tg, 304, "", "GET", S, nil, "If-None-Match", got.ETag())
	c.expect(tg, 200, "", "GET", S+"?consistency=stale", nil)
	c.expect(tg, 200, "", "GET", S+"/messages?after=1&limit=1", nil)
	c.expect(tg, 200, "", "GET", S+"/messages?after=1&wait=2s", nil)

	c.expect(tg, 200, "", "PUT", S, `{"lastSearchCriteria":{"to":"LIS","from":"BER"},"bookingInfo":null}`)
	c.expect(tg, 201, "", "PUT", sessionPath("doc-2"), `{"step":"search"}`)
	c.expect(tg, 200, "", "PATCH", S, `{"lastSearchCriteria":{"from":null,"dates":"05-03/05-07"}}`)
	c.expect(tg, 201, "", "PATCH", sessionPath("doc-3"), `{"step":"search"}`)
	c.expect(tg, 200, "", "GET", S+"/state", nil)
	c.expect(tg, 200, "", "GET", S+"/state/lastSearchCriteria", nil)
	c.expect(tg, 200, "", "PUT", S+"/state/bookingInfo", `{"ref":"ABC123"}`)
	c.expect(tg, 200, "", "PUT", S+"/state/bookingInfo", `null`)
	c.expect(tg, 201, "", "PUT", sessionPath("doc-4", "/state/bookingInfo"), `"x"`)
	c.expect(tg, 204, "", "DELETE", sessionPath("doc-4", "/state/bookingInfo"), nil)
	c.expect(tg, 200, "", "PUT", S+"/pending-match", `{"flight":"TP545","price":129}`)
	c.expect(tg, 201, "", "PUT", sessionPath("doc-5", "/pending-match"), `{"flight":"TP545"}`)
	c.expect(tg, 200, "", "GET", S+"/pending-match", nil)
	c.expect(tg, 204, "", "DELETE", S+"/pending-match", nil)

	c.expect(tg, 200, "", "PUT", S+"/expiry", `{"ttl":"24h"}`)
	c.expect(tg, 200, "", "GET", S, nil) // with expiresAt
	c.expect(tg, 200, "", "PUT", S+"/expiry", fmt.Sprintf(`{"at":%d}`, time.Now().Add(time.Hour).UnixMilli()))
	c.expect(tg, 200, "", "DELETE", S+"/expiry", nil)
	c.expect(tg, 200, "", "PUT", S+"/alarms/follow-up", `{"in":"10m","payload":{"say":"still there?"}}`)
	c.expect(tg, 200, "", "PUT", S+"/alarms/now", `{"in":"0s"}`)
	c.expect(tg, 200, "", "GET", S+"/alarms", nil)
	c.expect(tg, 204, "", "DELETE", S+"/alarms/follow-up", nil)
	c.stream(tg, S+"/events", "snapshot")
	c.stream(tg, S+"/events?after=1", "message")

	c.expect(tg, 204, "", "DELETE", sessionPath("doc-3"), nil)
}

func exerciseOperations(c *contract, tg *target) {
	c.run(tg,
		apiCall{200, "", "GET", "/v1/sessions?prefix=doc-&limit=2", nil, nil},
		apiCall{200, "", "GET", "/v1/sessions?prefix=doc-&after=doc-2", nil, nil},
		apiCall{200, "", "GET", "/v1/sessions/doc-1/owner", nil, nil},
		apiCall{200, "", "GET", "/v1/cluster", nil, nil},
		apiCall{200, "", "GET", "/v1/nodes/n1/cluster", nil, nil},
		apiCall{404, "node_not_found", "GET", "/v1/nodes/nobody/cluster", nil, nil},
		apiCall{200, "", "GET", "/v1/token", nil, nil},
		apiCall{200, "", "GET", "/metrics", nil, nil},
		apiCall{200, "", "GET", "/healthz", nil, nil},
		apiCall{200, "", "GET", "/readyz", nil, nil},
		apiCall{409, "no_other_replica", "POST", "/v1/shards/0/transfer-leadership", nil, nil},
		apiCall{400, "invalid_shard", "POST", "/v1/shards/99/transfer-leadership", nil, nil},
		apiCall{404, "node_not_found", "POST", "/v1/nodes/nobody/drain", nil, nil},
	)

	c.run(tg,
		apiCall{200, "", "GET", "/internal/v1/shards/0/replica", nil, nil},
		apiCall{200, "", "GET", "/internal/v1/shards/0/membership", nil, nil},
		apiCall{200, "", "GET", "/internal/v1/shards/0/sessions?limit=5", nil, nil},
	)
	c.send(tg, "POST", "/internal/v1/shards/0/replica", nil)
	c.run(tg,
		apiCall{409, "still_member", "DELETE", "/internal/v1/shards/0/replica", nil, nil},
		apiCall{400, "invalid_shard", "GET", "/internal/v1/shards/x/replica", nil, nil},
	)
}

// emptyShard is a snapshot of a shard that holds no session.
type emptyShard struct {
	shard       uint32
	index, term string
	body        []byte
}

// exerciseRestoreWhileEmpty backs up the node before it holds any session
// and restores that into it, whole and as one shard over the internal
// route, which a node does only while it is empty.
func exerciseRestoreWhileEmpty(c *contract, tg *target, sh uint32) emptyShard {
	archive := c.expect(tg, 200, "", "GET", "/v1/backup", nil)
	c.expect(tg, 200, "", "POST", "/v1/restore", archive.Body, "Content-Type", "application/x-tar")
	snap := c.expect(tg, 200, "", "GET", fmt.Sprintf("/internal/v1/shards/%d/snapshot?consistency=stale", sh), nil)
	e := emptyShard{shard: sh, index: snap.Header.Get(cluster.SnapshotIndexHeader),
		term: snap.Header.Get(cluster.SnapshotTermHeader), body: snap.Body}
	c.expect(tg, 204, "", "POST", fmt.Sprintf("/internal/v1/shards/%d/restore?index=%s", sh, e.index), e.body,
		"Content-Type", "application/octet-stream", cluster.SnapshotSHA256Header, sha256Hex(e.body))
	return e
}

// exerciseBackup backs up the node once it holds sessions, and has every
// restore refused: the node is no longer empty, or the archive is not one
// it can take.
func exerciseBackup(c *contract, tg *target, sh uint32, empty emptyShard) {
	tarType := []string{"Content-Type", "application/x-tar"}
	full := c.expect(tg, 200, "", "GET", "/v1/backup?consistency=stale", nil)
	c.run(tg,
		apiCall{409, "cluster_not_empty", "POST", "/v1/restore", full.Body, tarType},
		apiCall{409, "shard_count_mismatch", "POST", "/v1/restore", oneShardArchive(c.t, empty), tarType},
		apiCall{400, "invalid_backup", "POST", "/v1/restore", "not an archive", tarType},
		apiCall{400, "invalid_consistency", "GET", "/v1/backup?consistency=leader", nil, nil},
		apiCall{400, "invalid_shard", "GET", "/internal/v1/shards/99/snapshot", nil, nil},
	)
	restore := fmt.Sprintf("/internal/v1/shards/%d/restore?index=%s", sh, empty.index)
	octets := []string{"Content-Type", "application/octet-stream", cluster.SnapshotSHA256Header, sha256Hex(empty.body)}
	c.run(tg,
		apiCall{409, "cluster_not_empty", "POST", restore, empty.body, octets},
		apiCall{400, "invalid_backup", "POST", restore, "not a snapshot", octets},
	)
}

// oneShardArchive is a valid archive of a cluster of one shard.
func oneShardArchive(t *testing.T, e emptyShard) []byte {
	index, err1 := strconv.ParseUint(e.index, 10, 64)
	term, err2 := strconv.ParseUint(e.term, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("snapshot index %q, term %q: %v", e.index, e.term, err)
	}
	var buf bytes.Buffer
	w := backup.NewWriter(&buf)
	if err := w.AddShard(0, index, term, int64(len(e.body)), bytes.NewReader(e.body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(backup.Manifest{Node: testNodeID, ShardCount: 1, Consistency: "stale"}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// exerciseConsole fetches the console's page and every one of its files,
// so that a file the document's paths do not cover fails the test. tg
// must not follow redirects.
func exerciseConsole(c *contract, tg *target) {
	c.expect(tg, 301, "", "GET", "/ui", nil)
	c.expect(tg, 200, "", "GET", "/ui/", nil)
	c.expect(tg, 200, "", "HEAD", "/ui/", nil)
	err := fs.WalkDir(os.DirFS(filepath.Join("..", "ui", "static")), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		status := 200
		if name == "index.html" {
			status = 301 // to ./, the page
		}
		c.expect(tg, status, "", "GET", "/ui/"+name, nil)
		c.expect(tg, status, "", "HEAD", "/ui/"+name, nil)
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.run(tg,
		apiCall{404, "not_found", "GET", "/ui/nothing.css", nil, nil},
		apiCall{404, "not_found", "GET", "/ui/js/", nil, nil},
	)
}

func exerciseBadInput(c *contract, tg *target) {
	S := sessionPath("doc-1")
	big := func(n int) string { return strings.Repeat("x", n) }
	c.run(tg,
		apiCall{400, "invalid_session_id", "GET", sessionPath("bad%20id"), nil, nil},
		apiCall{400, "invalid_json", "PUT", S, `{`, nil},
		apiCall{400, "invalid_message", "POST", S + "/messages", `{"role":1,"content":"x"}`, nil},
	)
	c.expect(tg, 400, "too_many_messages", "POST", S+"/messages",
		`{"messages":[`+strings.TrimSuffix(strings.Repeat(`{"role":"user","content":"x"},`, 1001), ",")+`]}`)
	c.run(tg,
		apiCall{400, "invalid_fields", "PUT", S, `[1]`, nil},
		apiCall{400, "invalid_field_name", "PUT", S, `{"version":1}`, nil},
		apiCall{400, "messages_not_allowed", "PATCH", S, `{"messages":[]}`, nil},
		apiCall{400, "invalid_consistency", "GET", S + "?consistency=eventual", nil, nil},
		apiCall{400, "invalid_limit", "GET", S + "/messages?limit=0", nil, nil},
		apiCall{400, "invalid_after", "GET", S + "/messages?after=-1", nil, nil},
		apiCall{400, "invalid_limit", "GET", "/v1/sessions?limit=1001", nil, nil},
		apiCall{400, "invalid_after", "GET", "/v1/sessions?after=bad%20id", nil, nil},
		apiCall{400, "invalid_prefix", "GET", "/v1/sessions?prefix=%20", nil, nil},
		apiCall{400, "invalid_if_match", "PUT", S, `{"a":1}`, []string{"If-Match", "abc"}},
		apiCall{404, "session_not_found", "GET", sessionPath("nobody"), nil, nil},
		apiCall{404, "session_not_found", "DELETE", sessionPath("nobody"), nil, nil},
		apiCall{404, "field_not_found", "GET", S + "/state/nothing", nil, nil},
		apiCall{404, "not_found", "GET", "/nope", nil, nil},
		apiCall{405, "method_not_allowed", "POST", S + "/state", `{}`, nil},
		apiCall{409, "id_conflict", "POST", S + "/messages", `{"id":"m1","role":"user","content":"something else"}`, nil},
		apiCall{412, "version_mismatch", "PUT", S, `{"a":1}`, []string{"If-Match", `"999999"`}},
		apiCall{413, "body_too_large", "PUT", S, `{"a":"` + big(3<<20) + `"}`, nil},
		apiCall{413, "content_too_large", "POST", S + "/messages", `{"role":"user","content":"` + big(65<<10) + `"}`, nil},
		apiCall{413, "session_too_large", "PUT", S, `{"a":"` + big(1100<<10) + `"}`, nil},
		apiCall{400, "invalid_position", "GET", S + "/events?after=abc", nil, nil},
		apiCall{400, "invalid_wait", "GET", S + "/messages?wait=2m", nil, nil},
		apiCall{400, "invalid_expiry", "PUT", S + "/expiry", `{"ttl":"soon"}`, nil},
		apiCall{400, "invalid_alarm", "PUT", S + "/alarms/a", `{}`, nil},
		apiCall{404, "alarm_not_found", "DELETE", S + "/alarms/none", nil, nil},
	)
	// A position far ahead of the log: the replica waits for it, then gives up.
	c.run(tg,
		apiCall{503, "not_caught_up", "GET", S + "/events?after=99999999", nil, nil},
	)
}

func exerciseStrictServer(c *contract, tg *target, faults *faultStore) {
	noToken := []string{"Authorization", ""}
	readToken := []string{"Authorization", "Bearer read-token-0123456789abcdef"}
	dataToken := []string{"Authorization", "Bearer data-token-0123456789abcdef"}
	c.expect(tg, 401, "unauthorized", "GET", sessionPath("doc-1"), nil, noToken...)
	c.expect(tg, 403, "forbidden", "POST", sessionPath("doc-1", "/messages"), `{"role":"user","content":"x"}`, readToken...)
	c.expect(tg, 200, "", "GET", "/healthz", nil, noToken...)
	c.expect(tg, 200, "", "GET", "/ui/", nil, noToken...)
	c.expect(tg, 200, "", "GET", "/v1/token", nil, readToken...)
	c.expect(tg, 403, "forbidden", "GET", "/v1/backup", nil, readToken...)
	c.expect(tg, 401, "unauthorized", "GET", "/metrics", nil, noToken...)
	c.expect(tg, 403, "forbidden", "GET", "/metrics", nil, dataToken...)
	c.expect(tg, 200, "", "GET", "/v1/nodes/mirror/cluster", nil, readToken...)
	c.expect(tg, 409, "node_not_alive", "GET", "/v1/nodes/gone/cluster", nil)
	c.expect(tg, 503, "node_unreachable", "GET", "/v1/nodes/silent/cluster", nil)
	c.expect(tg, 201, "", "POST", sessionPath("rate", "/messages"), `{"role":"user","content":"x"}`)
	c.expect(tg, 429, "rate_limited", "POST", sessionPath("rate", "/messages"), `{"role":"user","content":"y"}`)
	c.expect(tg, 409, "node_not_alive", "POST", "/v1/nodes/gone/drain", nil)
	c.expect(tg, 409, "transfer_failed", "POST", "/v1/shards/0/transfer-leadership?to=gone", nil)
	c.expect(tg, 202, "", "POST", "/v1/nodes/n1/drain", nil)

	// The one stream this server allows is taken: a blocking read is refused.
	stop := c.holdStream(tg, sessionPath("doc-1", "/events"))
	c.expect(tg, 503, "overloaded", "GET", sessionPath("doc-1", "/messages?after=100&wait=1s"), nil)
	stop()

	faults.mu.Lock()
	faults.notReady = true
	faults.mu.Unlock()
	c.expect(tg, 503, "not_ready", "GET", "/readyz", nil)
	faults.mu.Lock()
	faults.notReady = false
	faults.mu.Unlock()

	// Every shard error is answered to writes; the ones reads can meet
	// are answered to a listing too.
	for code, err := range map[string]error{
		"no_leader":            &shard.NotLeaderError{Shard: 0},
		"not_ready":            shard.ErrNotReady,
		"shutting_down":        shard.ErrShutdown,
		"shard_unavailable":    &shard.NotHostedError{Shard: 0},
		"timeout":              context.DeadlineExceeded,
		"outcome_unknown":      shard.ErrOutcomeUnknown,
		"insufficient_storage": &cluster.NoSpaceError{Shard: 0, Node: "n1"},
	} {
		faults.fail(err)
		status := 503
		if code == "insufficient_storage" {
			status = 507
		}
		c.expect(tg, status, code, "POST", sessionPath("fault-"+code, "/messages"), `{"role":"user","content":"x"}`)
		if status == 503 && code != "outcome_unknown" {
			c.expect(tg, status, "", "GET", "/v1/sessions", nil)
		}
		faults.fail(nil)
	}
}

// exerciseForwarding sends requests a node forwards to a shard leader that
// is down: the node itself answers, and names itself.
func exerciseForwarding(c *contract, tg *target) {
	c.run(tg,
		apiCall{503, "no_leader", "GET", sessionPath("doc-1"), nil, nil},
		apiCall{503, "no_leader", "POST", sessionPath("doc-1", "/messages"), `{"role":"user","content":"x"}`, nil},
		apiCall{503, "no_leader", "GET", "/v1/sessions/doc-1/owner", nil, nil},
	)
	r := c.expect(tg, 307, "", "GET", sessionPath("doc-1", "?redirect=1"), nil)
	if loc := r.Header.Get("Location"); !strings.HasSuffix(loc, "/api/chat/session/doc-1?redirect=1") {
		c.t.Errorf("redirect to the leader: Location %q", loc)
	}
}

// stream opens a change stream, reads until an event of the given kind,
// and checks the headers and what was read against the document.
func (c *contract) stream(tg *target, path, kind string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, resp := c.open(ctx, tg, path)
	defer resp.Body.Close()
	var got bytes.Buffer
	br := bufio.NewReader(io.TeeReader(resp.Body, &got))
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("GET %s: no %s event before %v (read %q)", path, kind, err, got.String())
		}
		if strings.TrimSpace(line) == "event: "+kind {
			break
		}
	}
	c.record(req, &response{Method: "GET", Path: path, Status: resp.StatusCode, Header: resp.Header, Body: got.Bytes()})
}

// holdStream opens a change stream and keeps it open until stop is called.
func (c *contract) holdStream(tg *target, path string) (stop func()) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, resp := c.open(ctx, tg, path)
	c.record(req, &response{Method: "GET", Path: path, Status: resp.StatusCode, Header: resp.Header})
	return func() {
		cancel()
		resp.Body.Close()
	}
}

func (c *contract) open(ctx context.Context, tg *target, path string) (*http.Request, *http.Response) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", tg.url+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(tg.header); i += 2 {
		req.Header.Set(tg.header[i], tg.header[i+1])
	}
	resp, err := tg.client.Do(req)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return req, resp
}
