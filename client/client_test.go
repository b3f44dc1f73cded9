package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/testnode"
)

func newClient(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// deadEndpoint is a loopback address nothing listens on.
func deadEndpoint(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestSessionsMessagesAndFieldsRoundTripThroughARealNode(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})[0]
	c := newClient(t, client.Config{Endpoints: []string{n.URL}})
	ctx := ctx(t)

	res, err := c.Append(ctx, "demo-1", []client.Message{{ID: "m1", Role: "user", Content: "Find me a flight to Lisbon"}})
	if err != nil || !res.Created || len(res.Messages) != 1 || res.Messages[0].Seq != 1 {
		t.Fatalf("Append = %+v, %v", res, err)
	}
	again, err := c.Append(ctx, "demo-1", []client.Message{{ID: "m1", Role: "user", Content: "Find me a flight to Lisbon"}})
	if err != nil || again.Created || again.Messages[0].Seq != 1 {
		t.Fatalf("repeated Append = %+v, %v; want the stored message, not created", again, err)
	}
	if _, err := c.Append(ctx, "demo-1", []client.Message{{Role: "assistant", Content: "Which dates?"}, {Role: "user", Content: "May 3-7"}},
		client.IdempotencyKey("turn-2")); err != nil {
		t.Fatal(err)
	}
	s, err := c.Update(ctx, "demo-1", map[string]any{"lastSearchCriteria": map[string]string{"to": "LIS"}})
	if err != nil || string(s.Fields["lastSearchCriteria"]) != `{"to":"LIS"}` {
		t.Fatalf("Update = %+v, %v", s, err)
	}
	if _, err := c.Patch(ctx, "demo-1", json.RawMessage(`{"lastSearchCriteria":{"from":"BER"}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetField(ctx, "demo-1", "pendingMatch", map[string]any{"flight": "TP545"}); err != nil {
		t.Fatal(err)
	}

	got, err := c.Get(ctx, "demo-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "demo-1" || len(got.Messages) != 3 || got.Messages[1].ID != "turn-2#0" || got.Version == 0 {
		t.Fatalf("Get = %+v", got)
	}
	if string(got.Fields["lastSearchCriteria"]) != `{"from":"BER","to":"LIS"}` || string(got.Fields["pendingMatch"]) != `{"flight":"TP545"}` {
		t.Fatalf("fields = %s", got.Raw)
	}
	st, err := c.State(ctx, "demo-1", client.WithConsistency(client.Stale))
	if err != nil || st.Version != got.Version || len(st.Fields) != 2 {
		t.Fatalf("State = %+v, %v; want version %d and two fields", st, err, got.Version)
	}
	pm, err := c.Field(ctx, "demo-1", "pendingMatch")
	if err != nil || strings.TrimSpace(string(pm)) != `{"flight":"TP545"}` {
		t.Fatalf("Field = %s, %v", pm, err)
	}
	page, err := c.Messages(ctx, "demo-1", client.MessagesQuery{After: 1, Limit: 1})
	if err != nil || len(page.Messages) != 1 || page.Messages[0].Seq != 2 || !page.HasMore || page.NextAfter != 2 || page.Total != 3 {
		t.Fatalf("Messages = %+v, %v", page, err)
	}
	list, err := c.Sessions(ctx, client.ListQuery{Prefix: "demo-"})
	if err != nil || len(list.Sessions) != 1 || list.Sessions[0].MessageCount != 3 || list.Next != "" {
		t.Fatalf("Sessions = %+v, %v", list, err)
	}

	if err := c.DeleteField(ctx, "demo-1", "pendingMatch"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Field(ctx, "demo-1", "pendingMatch"); !errors.Is(err, client.ErrFieldNotFound) {
		t.Fatalf("deleted field: %v, want ErrFieldNotFound", err)
	}
	if err := c.Delete(ctx, "demo-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "demo-1"); !errors.Is(err, client.ErrSessionNotFound) {
		t.Fatalf("deleted session: %v, want ErrSessionNotFound", err)
	}
}

func TestConditionalWritesFailWithTheCurrentVersionAndChangeNothing(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})[0]
	c := newClient(t, client.Config{Endpoints: []string{n.URL}})
	ctx := ctx(t)

	s, err := c.Update(ctx, "cond", map[string]any{"step": 1}, client.IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Update(ctx, "cond", map[string]any{"step": 99}, client.IfAbsent())
	var e *client.Error
	if !errors.As(err, &e) || !errors.Is(err, client.ErrVersionMismatch) || e.Status != http.StatusPreconditionFailed || e.Version != s.Version {
		t.Fatalf("IfAbsent on an existing session: %v (%+v), want version_mismatch with version %d", err, e, s.Version)
	}
	if _, err := c.Patch(ctx, "cond", map[string]any{"step": 99}, client.IfVersion(s.Version+1)); !errors.Is(err, client.ErrVersionMismatch) {
		t.Fatalf("stale IfVersion: %v", err)
	}
	s2, err := c.Update(ctx, "cond", map[string]any{"step": 2}, client.IfVersion(s.Version))
	if err != nil || string(s2.Fields["step"]) != "2" || s2.Version <= s.Version {
		t.Fatalf("current IfVersion: %+v, %v", s2, err)
	}
}

func TestEveryErrorAnswerIsATypedErrorWithItsCode(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})[0]
	c := newClient(t, client.Config{Endpoints: []string{n.URL}})
	ctx := ctx(t)
	if _, err := c.Append(ctx, "e", []client.Message{{ID: "m1", Role: "user", Content: "a"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		err    error
		want   *client.Error
		status int
	}{
		{"bad id", func() error { _, err := c.Get(ctx, "bad id!"); return err }(), client.ErrInvalidSessionID, 400},
		{"missing", func() error { _, err := c.Get(ctx, "nope"); return err }(), client.ErrSessionNotFound, 404},
		{"id conflict", func() error {
			_, err := c.Append(ctx, "e", []client.Message{{ID: "m1", Role: "user", Content: "other"}})
			return err
		}(), client.ErrIDConflict, 409},
		{"reserved field", func() error { _, err := c.Update(ctx, "e", map[string]any{"version": 1}); return err }(), client.ErrInvalidFieldName, 400},
		{"not an object", func() error { _, err := c.Update(ctx, "e", []int{1}); return err }(), client.ErrInvalidFields, 400},
		{"limit", func() error { _, err := c.Messages(ctx, "e", client.MessagesQuery{Limit: 5000}); return err }(), client.ErrInvalidLimit, 400},
		{"consistency", func() error { _, err := c.Get(ctx, "e", client.WithConsistency("eventual")); return err }(), client.ErrInvalidConsistency, 400},
		{"alarm", func() error { return c.DeleteAlarm(ctx, "e", "none") }(), client.ErrAlarmNotFound, 404},
		{"shard", func() error { _, err := c.TransferLeadership(ctx, 99, ""); return err }(), client.ErrInvalidShard, 400},
		{"drain", func() error { return c.Drain(ctx, "no-such-node") }(), client.ErrNodeNotFound, 404},
	} {
		var e *client.Error
		if !errors.As(tc.err, &e) || !errors.Is(tc.err, tc.want) || e.Status != tc.status || e.Message == "" || e.Endpoint != n.URL {
			t.Errorf("%s: %v (%+v), want %s with status %d", tc.name, tc.err, e, tc.want.Code, tc.status)
		}
		if errors.Is(tc.err, client.ErrOutcomeUnknown) {
			t.Errorf("%s matches ErrOutcomeUnknown", tc.name)
		}
	}
}

// faultyProxy sits in front of a node. fault decides, per request, to
// answer itself (status > 0) or to pass the request on and cut the
// connection before the answer (cut), or to pass it on (neither).
type faultyProxy struct {
	srv   *httptest.Server
	mu    sync.Mutex
	seen  map[string]int // "METHOD path" → requests
	fault func(r *http.Request, nth int) (status int, code string, cut bool)
}

func newFaultyProxy(t *testing.T, target string) *faultyProxy {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &faultyProxy{seen: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		key := r.Method + " " + r.URL.Path
		p.seen[key]++
		nth := p.seen[key]
		p.mu.Unlock()
		status, code, cut := 0, "", false
		if p.fault != nil {
			status, code, cut = p.fault(r, nth)
		}
		switch {
		case status > 0:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": "injected"}})
		case cut:
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r) // the node applies it …
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close() // … and the answer is lost
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultyProxy) count(method, path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[method+" "+path]
}

func TestAnAppendWhoseAnswerWasLostIsRetriedAndStoredOnce(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})[0]
	p := newFaultyProxy(t, n.URL)
	p.fault = func(r *http.Request, nth int) (int, string, bool) { return 0, "", r.Method == "POST" && nth == 1 }
	c := newClient(t, client.Config{Endpoints: []string{p.srv.URL}, Backoff: time.Millisecond})
	ctx := ctx(t)

	// No message ids: the client names them with one Idempotency-Key.
	res, err := c.Append(ctx, "once", []client.Message{{Role: "user", Content: "a"}, {Role: "user", Content: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.count("POST", "/api/chat/session/once/messages") != 2 || res.Created {
		t.Fatalf("%d POSTs, created=%v; want the lost first one applied and the retry answered as a repeat",
			p.count("POST", "/api/chat/session/once/messages"), res.Created)
	}
	s, err := c.Get(ctx, "once")
	if err != nil || len(s.Messages) != 2 {
		t.Fatalf("session after the retried append: %+v, %v; want each message once", s, err)
	}
}

func TestAFieldsWriteWhoseOutcomeIsUnknownIsNeverRetried(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})[0]
	p := newFaultyProxy(t, n.URL)
	c := newClient(t, client.Config{Endpoints: []string{p.srv.URL}, Backoff: time.Millisecond})
	ctx := ctx(t)

	p.fault = func(r *http.Request, nth int) (int, string, bool) { return 0, "", r.Method == "PUT" }
	_, err := c.Update(ctx, "put-once", map[string]any{"step": 1})
	if !errors.Is(err, client.ErrOutcomeUnknown) || p.count("PUT", "/api/chat/session/put-once") != 1 {
		t.Fatalf("cut PUT: %v after %d PUTs; want outcome_unknown after one", err, p.count("PUT", "/api/chat/session/put-once"))
	}
	p.fault = func(r *http.Request, nth int) (int, string, bool) {
		return map[bool]int{true: 503}[r.Method == "PATCH"], "outcome_unknown", false
	}
	_, err = c.Patch(ctx, "put-once", map[string]any{"step": 2})
	if !errors.Is(err, client.ErrOutcomeUnknown) || p.count("PATCH", "/api/chat/session/put-once") != 1 {
		t.Fatalf("PATCH answered outcome_unknown: %v after %d PATCHes; want it returned, not retried", err, p.count("PATCH", "/api/chat/session/put-once"))
	}
}

func TestAnswersThatSayNotAppliedAreRetried(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})[0]
	p := newFaultyProxy(t, n.URL)
	p.fault = func(r *http.Request, nth int) (int, string, bool) {
		if nth == 1 {
			return 503, "overloaded", false
		}
		if nth == 2 {
			return 429, "rate_limited", false
		}
		return 0, "", false
	}
	c := newClient(t, client.Config{Endpoints: []string{p.srv.URL}, Backoff: time.Millisecond})
	ctx := ctx(t)
	s, err := c.Update(ctx, "busy", map[string]any{"step": 1})
	if err != nil || string(s.Fields["step"]) != "1" || p.count("PUT", "/api/chat/session/busy") != 3 {
		t.Fatalf("Update = %v after %d PUTs; want success on the third", err, p.count("PUT", "/api/chat/session/busy"))
	}

	once := newClient(t, client.Config{Endpoints: []string{p.srv.URL}, MaxAttempts: 1})
	p.fault = func(*http.Request, int) (int, string, bool) { return 503, "no_leader", false }
	_, err = once.Get(ctx, "busy")
	var e *client.Error
	if !errors.As(err, &e) || !errors.Is(err, client.ErrNoLeader) || !e.Retryable() {
		t.Fatalf("MaxAttempts 1: %v, want the no_leader answer", err)
	}
}

func TestRequestsFailOverToTheNextEndpoint(t *testing.T) {
	nodes := testnode.Start(t, testnode.Options{Nodes: 3})
	ctx := ctx(t)
	c := newClient(t, client.Config{Endpoints: []string{deadEndpoint(t), nodes[0].URL, nodes[1].URL, nodes[2].URL}})
	if _, err := c.Append(ctx, "fo", []client.Message{{ID: "m1", Role: "user", Content: "a"}}); err != nil {
		t.Fatalf("with a dead first endpoint: %v", err)
	}
	nodes[0].Kill()
	for i := range 3 {
		if _, err := c.Append(ctx, "fo", []client.Message{{ID: "m" + string(rune('2'+i)), Role: "user", Content: "b"}}); err != nil {
			t.Fatalf("append %d after the serving node died: %v", i, err)
		}
	}
	s, err := c.Get(ctx, "fo")
	if err != nil || len(s.Messages) != 4 {
		t.Fatalf("Get after failover: %+v, %v", s, err)
	}

	dead := newClient(t, client.Config{Endpoints: []string{deadEndpoint(t), deadEndpoint(t)}, MaxAttempts: 2, Backoff: time.Millisecond})
	_, err = dead.Get(ctx, "fo")
	if !errors.Is(err, client.ErrUnreachable) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("no endpoint up: %v, want unreachable: connection refused", err)
	}
}
