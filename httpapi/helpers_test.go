package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/metrics"
	"github.com/sessiond/sessiond/shard"
)

const (
	testNodeID     = "n1"
	testShardCount = 4
	startTimeout   = 20 * time.Second
)

// node is one real sessiond node: a single-node raft cluster with every
// shard on local boltdb, served over real HTTP by httpapi.
type node struct {
	tb     testing.TB
	dir    string
	node   *cluster.Node
	host   *shard.Host
	srv    *httptest.Server
	api    *httpapi.Server
	url    string
	client *http.Client
	conns  atomic.Int64 // HTTP connections accepted

	srvOnce  sync.Once
	hostOnce sync.Once
}

// logBuffer collects a node's log lines; they are shown only when the test
// fails, so passing runs and benchmark output stay clean.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// testLogger keeps warnings and errors only, so a failing run still shows
// what raft complained about.
func testLogger(tb testing.TB) *slog.Logger {
	lb := &logBuffer{}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("node log (warnings and errors):\n%s", lb.String())
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newTransport allows enough idle connections per host for benchmarks with
// many concurrent clients.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
}

// startNode starts a fresh node in a new temporary directory.
func startNode(tb testing.TB) *node {
	tb.Helper()
	return openNode(tb, tb.TempDir())
}

// openNode starts a node on dir (bootstrapping it if dir is empty), waits
// until /readyz answers 200 and every shard has applied its leader's no-op,
// and closes it when the test ends.
func openNode(tb testing.TB, dir string) *node {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("raft listener: %v", err)
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("http listener: %v", err)
	}
	logger := testLogger(tb)
	cn, err := cluster.Start(cluster.Config{
		NodeID:          testNodeID,
		DataDir:         dir,
		RaftListener:    ln,
		RaftAdvertise:   ln.Addr().String(),
		HTTPAdvertise:   httpLn.Addr().String(),
		GossipBind:      "127.0.0.1:0",
		BootstrapExpect: 1,
		ShardCount:      testShardCount,
		Replicas:        1,
		ShardTuning:     testTuning(),
		Logger:          logger,
	})
	if err != nil {
		ln.Close()
		httpLn.Close()
		tb.Fatalf("start single node: %v", err)
	}
	cfg := httpapi.DefaultConfig()
	cfg.Logger = logger
	cfg.Version = "test"
	cfg.Cluster, cfg.Replicas = cn, cn
	// Measured as sessiond runs, so that every test and benchmark pays
	// for the metrics too.
	reg := metrics.New()
	cfg.Metrics, cfg.MetricsHandler = reg, reg.Handler()
	n := &node{tb: tb, dir: dir, node: cn, host: cn.Host(),
		client: &http.Client{Transport: newTransport(), Timeout: 30 * time.Second}}
	n.api = httpapi.New(cn, cfg)
	n.srv = httptest.NewUnstartedServer(n.api)
	n.srv.Listener.Close()
	n.srv.Listener = httpLn
	n.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			n.conns.Add(1)
		}
	}
	n.srv.Start()
	n.url = n.srv.URL
	tb.Cleanup(n.close)
	n.waitReady()
	return n
}

// close stops the HTTP server and the node, keeping the data directory.
func (n *node) close() {
	n.srvOnce.Do(func() {
		n.srv.Close()
		n.client.CloseIdleConnections()
	})
	n.closeHost()
}

// closeHost stops every shard but leaves the HTTP server running.
func (n *node) closeHost() {
	n.hostOnce.Do(func() {
		if err := n.node.Close(); err != nil {
			n.tb.Errorf("close host: %v", err)
		}
	})
}

// waitReady polls /readyz until it answers 200, then waits until every
// shard's leader has applied its own no-op, so the raft logs stay put until
// a client writes.
func (n *node) waitReady() {
	n.tb.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := n.client.Get(n.url + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			n.tb.Fatalf("node not ready after %v (last error %v)", startTimeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for s := uint32(0); s < testShardCount; s++ {
		for {
			_, err := n.host.Read(ctx, s, shard.Linearizable)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				n.tb.Fatalf("shard %d never became readable: %v", s, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// raftIndex sums the last raft log index over every shard: it moves exactly
// when something was proposed.
func (n *node) raftIndex() uint64 {
	var sum uint64
	for s := uint32(0); s < testShardCount; s++ {
		st, ok := n.host.ShardStatus(s)
		if !ok {
			n.tb.Fatalf("shard %d not hosted", s)
		}
		sum += st.LastIndex
	}
	return sum
}

// response is a fully read HTTP response.
type response struct {
	Method string
	Path   string
	Status int
	Header http.Header
	Body   []byte
}

func (r *response) String() string {
	return fmt.Sprintf("%s %s → %d %s", r.Method, r.Path, r.Status, bytes.TrimSpace(r.Body))
}

// ETag returns the ETag header.
func (r *response) ETag() string { return r.Header.Get("ETag") }

// errorBody is the API's error model.
type errorBody = client.ErrorBody

// request builds a request. body may be nil (no body), a string or []byte
// (sent as is), or anything else (sent as JSON). hdr holds header name/value
// pairs.
func (n *node) request(method, path string, body any, hdr ...string) *http.Request {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			panic(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, n.url+path, rd)
	if err != nil {
		panic(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// tryDo sends a request and reads the whole answer. Safe from any goroutine.
// Whatever the request, the answer must name the node and must not be a 500.
func (n *node) tryDo(method, path string, body any, hdr ...string) (*response, error) {
	req := n.request(method, path, body, hdr...)
	resp, err := n.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := &response{Method: method, Path: path, Status: resp.StatusCode, Header: resp.Header, Body: data}
	if got := resp.Header.Get("X-Sessiond-Node"); got != testNodeID {
		n.tb.Errorf("%s: X-Sessiond-Node = %q, want %q", r, got, testNodeID)
	}
	if r.Status >= 500 && r.Status != http.StatusServiceUnavailable {
		n.tb.Errorf("%s: server error", r)
	}
	return r, nil
}

// do is tryDo for the test goroutine: a transport error fails the test.
func (n *node) do(method, path string, body any, hdr ...string) *response {
	n.tb.Helper()
	r, err := n.tryDo(method, path, body, hdr...)
	if err != nil {
		n.tb.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (n *node) get(path string, hdr ...string) *response {
	n.tb.Helper()
	return n.do(http.MethodGet, path, nil, hdr...)
}

// sessionPath is the API path of session id plus an optional suffix.
func sessionPath(id string, suffix ...string) string {
	return "/api/chat/session/" + id + strings.Join(suffix, "")
}

// wantStatus fails the test unless r has the given status.
func wantStatus(tb testing.TB, r *response, status int) {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("%s: status %d, want %d", r, r.Status, status)
	}
}

// wantError fails the test unless r is the JSON error model with the given
// status and code.
func wantError(tb testing.TB, r *response, status int, code string) {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("%s: status %d, want %d (%s)", r, r.Status, status, code)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("%s: Content-Type %q, want application/json", r, ct)
	}
	var e errorBody
	if err := json.Unmarshal(r.Body, &e); err != nil {
		tb.Fatalf("%s: error body is not JSON: %v", r, err)
	}
	if e.Error.Code != code {
		tb.Fatalf("%s: error code %q, want %q", r, e.Error.Code, code)
	}
	if e.Error.Message == "" {
		tb.Errorf("%s: error message is empty", r)
	}
}

// decode unmarshals r's body into v.
func decode(tb testing.TB, r *response, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("%s: decode body: %v", r, err)
	}
}

// etagOf is the ETag the API sends for version v.
func etagOf(v uint64) string { return fmt.Sprintf("%q", fmt.Sprint(v)) }

// wantETag checks that r carries the ETag of version v.
func wantETag(tb testing.TB, r *response, v uint64) {
	tb.Helper()
	if got, want := r.ETag(), etagOf(v); got != want {
		tb.Fatalf("%s: ETag %s, want %s", r, got, want)
	}
}

// sessionDoc is GET /api/chat/session/{id}'s body.
type sessionDoc struct {
	ID             string        `json:"id"`
	CreatedAt      int64         `json:"createdAt"`
	UpdatedAt      int64         `json:"updatedAt"`
	LastAccessedAt int64         `json:"lastAccessedAt"`
	Version        uint64        `json:"version"`
	Messages       []fsm.Message `json:"messages"`
}

// fieldsOf returns the members of a session document that are fields.
func fieldsOf(tb testing.TB, r *response) map[string]json.RawMessage {
	tb.Helper()
	var m map[string]json.RawMessage
	decode(tb, r, &m)
	for _, k := range []string{"id", "createdAt", "updatedAt", "lastAccessedAt", "version", "messages"} {
		if _, ok := m[k]; !ok {
			tb.Fatalf("%s: session document lacks %q", r, k)
		}
		delete(m, k)
	}
	return m
}

// appendResp is the body of POST …/messages.
type appendResp struct {
	Messages []fsm.Message `json:"messages"`
	Version  uint64        `json:"version"`
}

// pageResp is the body of GET …/messages.
type pageResp struct {
	Messages  []fsm.Message `json:"messages"`
	Version   uint64        `json:"version"`
	Total     int           `json:"total"`
	NextAfter uint64        `json:"nextAfter"`
	HasMore   bool          `json:"hasMore"`
}

// fieldResp is the body of PUT …/state/{field}.
type fieldResp struct {
	Name    string          `json:"name"`
	Value   json.RawMessage `json:"value"`
	Version uint64          `json:"version"`
}

// msg builds a message object for a request body.
func msg(id, role, content string) map[string]any {
	m := map[string]any{"role": role, "content": content}
	if id != "" {
		m["id"] = id
	}
	return m
}

// appendMsg appends one message and requires 201.
func (n *node) appendMsg(id, msgID, content string) appendResp {
	n.tb.Helper()
	r := n.do(http.MethodPost, sessionPath(id, "/messages"), msg(msgID, "user", content))
	wantStatus(n.tb, r, http.StatusCreated)
	var out appendResp
	decode(n.tb, r, &out)
	wantETag(n.tb, r, out.Version)
	return out
}

// session GETs a session and requires 200.
func (n *node) session(id string) (*response, sessionDoc) {
	n.tb.Helper()
	r := n.get(sessionPath(id))
	wantStatus(n.tb, r, http.StatusOK)
	var doc sessionDoc
	decode(n.tb, r, &doc)
	wantETag(n.tb, r, doc.Version)
	return r, doc
}

// wantAbsent requires a 404 session_not_found for id.
func (n *node) wantAbsent(id string) {
	n.tb.Helper()
	wantError(n.tb, n.get(sessionPath(id)), http.StatusNotFound, "session_not_found")
}

// wantSame requires that session id reads back exactly as before.
func (n *node) wantSame(id string, before *response) {
	n.tb.Helper()
	after := n.get(sessionPath(id))
	if after.Status != before.Status || !bytes.Equal(after.Body, before.Body) || after.ETag() != before.ETag() {
		n.tb.Fatalf("session %s changed:\nbefore %s (ETag %s)\nafter  %s (ETag %s)", id, before, before.ETag(), after, after.ETag())
	}
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(tb testing.TB, got, want string) bool {
	tb.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		tb.Fatalf("not JSON: %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		tb.Fatalf("not JSON: %s: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return bytes.Equal(gb, wb)
}

// testTuning is the default tuning with a 300ms heartbeat: a new single
// node elects its shards' leaders within one to two heartbeats, and the
// suite starts many.
func testTuning() shard.Tuning {
	tu := shard.DefaultTuning
	tu.Heartbeat = 300 * time.Millisecond
	return tu
}
