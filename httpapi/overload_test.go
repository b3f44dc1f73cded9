package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/shard"
)

// fakeStore is an httpapi.Store over one in-memory state machine per shard,
// without raft. Calls on a held shard wait until it is let go, so a test can
// keep any number of operations in flight.
type fakeStore struct {
	node   string
	shards int

	mu    sync.Mutex // serializes applies, as raft does
	fsms  []*fsm.FSM
	index uint64
	holds map[uint32]chan struct{}

	calls   atomic.Int64  // Apply and Read calls that reached the store
	applies atomic.Int64  // Apply calls that reached the store
	waiting chan struct{} // one value per call that starts waiting on a hold
}

func newFakeStore(node string, shards int) *fakeStore {
	st := &fakeStore{node: node, shards: shards, holds: map[uint32]chan struct{}{}, waiting: make(chan struct{}, 1024)}
	for range shards {
		st.fsms = append(st.fsms, fsm.New(fsm.DefaultLimits))
	}
	return st
}

func (st *fakeStore) NodeID() string                          { return st.node }
func (st *fakeStore) ShardCount() int                         { return st.shards }
func (st *fakeStore) ShardFor(id string) uint32               { return shard.ShardFor(id, st.shards) }
func (st *fakeStore) Ready() bool                             { return true }
func (st *fakeStore) ShardStatus(uint32) (shard.Status, bool) { return shard.Status{}, false }

// hold makes later calls on shard s wait; the returned function lets them
// go, as does the end of the test.
func (st *fakeStore) hold(t *testing.T, s uint32) (letGo func()) {
	ch := make(chan struct{})
	st.mu.Lock()
	st.holds[s] = ch
	st.mu.Unlock()
	var once sync.Once
	letGo = func() {
		once.Do(func() {
			st.mu.Lock()
			delete(st.holds, s)
			st.mu.Unlock()
			close(ch)
		})
	}
	t.Cleanup(letGo)
	return letGo
}

func (st *fakeStore) wait(ctx context.Context, s uint32) error {
	st.mu.Lock()
	ch := st.holds[s]
	st.mu.Unlock()
	if ch == nil {
		return nil
	}
	st.waiting <- struct{}{}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (st *fakeStore) Apply(ctx context.Context, s uint32, cmd *fsm.Command) (*fsm.Result, error) {
	st.calls.Add(1)
	st.applies.Add(1)
	if err := st.wait(ctx, s); err != nil {
		return nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.index++
	return st.fsms[s].ApplyCommand(st.index, cmd), nil
}

func (st *fakeStore) Read(ctx context.Context, s uint32, _ shard.Consistency) (*fsm.FSM, error) {
	st.calls.Add(1)
	if err := st.wait(ctx, s); err != nil {
		return nil, err
	}
	return st.fsms[s], nil
}

// awaitWaiting waits until n calls wait on holds.
func (st *fakeStore) awaitWaiting(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-st.waiting:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d operations reached the store", i, n)
		}
	}
}

// sessionsOn returns n session ids that map to shard s.
func (st *fakeStore) sessionsOn(s uint32, prefix string, n int) []string {
	var ids []string
	for i := 0; len(ids) < n; i++ {
		if id := fmt.Sprintf("%s-%d", prefix, i); st.ShardFor(id) == s {
			ids = append(ids, id)
		}
	}
	return ids
}

// fakeCluster is the same view of every shard, fixed by the test: by
// default led by another node, at leaderAddr, with no replica here. local
// makes this node the leader, replica gives it a replica.
type fakeCluster struct {
	leader, leaderAddr string
	local, replica     bool
	members            []cluster.MemberStatus
	transferErr        error // what TransferLeadership answers
}

func (c *fakeCluster) Leader(uint32) (string, string, bool)    { return c.leader, c.leaderAddr, c.local }
func (c *fakeCluster) HasReplica(uint32) bool                  { return c.replica }
func (c *fakeCluster) Members() []cluster.MemberStatus         { return c.members }
func (c *fakeCluster) TransferLeadership(uint32, string) error { return c.transferErr }
func (c *fakeCluster) Desired(uint32) []string                 { return nil }
func (c *fakeCluster) MoveInFlight(uint32) *cluster.Move       { return nil }
func (c *fakeCluster) Alarms() []cluster.Alarm                 { return nil }

// serveFake serves the API over st with the given bounds on a real
// loopback HTTP server.
func serveFake(t *testing.T, st *fakeStore, perShard, total int, cl httpapi.Cluster) string {
	t.Helper()
	cfg := httpapi.DefaultConfig()
	cfg.Logger = testLogger(t)
	cfg.MaxInFlightPerShard, cfg.MaxInFlight = perShard, total
	cfg.Cluster = cl
	srv := httptest.NewServer(httpapi.New(st, cfg))
	t.Cleanup(srv.Close)
	return srv.URL
}

var fakeClient = &http.Client{Timeout: 20 * time.Second}

// call sends one request with an optional JSON body and reads the answer.
func call(t *testing.T, method, url, body string) *response {
	return callWith(t, fakeClient, method, url, body)
}

// callWith is call through client, with header name/value pairs.
func callWith(t *testing.T, client *http.Client, method, url, body string, hdr ...string) *response {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return &response{Method: method, Path: url}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return &response{Method: method, Path: url}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &response{Method: method, Path: url, Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func appendBody(id string) string { return `{"id":"` + id + `","role":"user","content":"hi"}` }

// background sends requests in goroutines; wait returns their answers in
// the order they were started.
type background struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	resp []*response
}

func (b *background) do(t *testing.T, method, url, body string) {
	b.mu.Lock()
	i := len(b.resp)
	b.resp = append(b.resp, nil)
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		r := call(t, method, url, body)
		b.mu.Lock()
		b.resp[i] = r
		b.mu.Unlock()
	}()
}

func (b *background) wait() []*response {
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.resp
}

// fillShard holds shard s of st and sends one append per id to url, which
// reaches st directly or through a forwarding node, and returns once all
// of them wait in st: the shard's bound is full if len(ids) is the bound.
func fillShard(t *testing.T, st *fakeStore, s uint32, url string, ids []string) (letGo func(), bg *background) {
	t.Helper()
	letGo = st.hold(t, s)
	bg = &background{}
	for _, id := range ids {
		bg.do(t, http.MethodPost, url+sessionPath(id, "/messages"), appendBody("m1"))
	}
	st.awaitWaiting(t, len(ids))
	return letGo, bg
}

// wantOverloaded requires an immediate 503 overloaded with Retry-After.
func wantOverloaded(t *testing.T, r *response, took time.Duration) {
	t.Helper()
	wantError(t, r, http.StatusServiceUnavailable, httpapi.CodeOverloaded)
	if ra := r.Header.Get("Retry-After"); ra != "1" {
		t.Errorf("%s: Retry-After %q, want 1", r, ra)
	}
	if took > 2*time.Second {
		t.Errorf("%s: answered after %v; a shed request must not wait", r, took)
	}
}

// TestFullShardSheds503OverloadedAtOnceAndAppliesNothing holds a shard's
// whole in-flight bound in the store. The next write and read on that shard
// are answered 503 overloaded with Retry-After at once, without reaching the
// store, while other shards still serve. Once the held operations finish,
// the shard serves again: the shed write was not applied, and its retry is.
func TestFullShardSheds503OverloadedAtOnceAndAppliesNothing(t *testing.T) {
	const bound = 3
	st := newFakeStore(testNodeID, testShardCount)
	url := serveFake(t, st, bound, 100, nil)
	const busy = uint32(1)
	ids := st.sessionsOn(busy, "busy", bound+1)
	held, shed := ids[:bound], ids[bound]

	letGo := st.hold(t, busy)
	bg := &background{}
	for _, id := range held {
		bg.do(t, http.MethodPost, url+sessionPath(id, "/messages"), appendBody("m1"))
	}
	st.awaitWaiting(t, bound)
	callsBefore := st.calls.Load()

	start := time.Now()
	r := call(t, http.MethodPost, url+sessionPath(shed, "/messages"), appendBody("m1"))
	wantOverloaded(t, r, time.Since(start))
	start = time.Now()
	r = call(t, http.MethodGet, url+sessionPath(held[0]), "")
	wantOverloaded(t, r, time.Since(start))
	start = time.Now()
	r = call(t, http.MethodPut, url+sessionPath(shed), `{"step":"search"}`)
	wantOverloaded(t, r, time.Since(start))
	if got := st.calls.Load(); got != callsBefore {
		t.Fatalf("%d shed requests reached the store", got-callsBefore)
	}

	// Another shard is not affected by this one's bound.
	other := st.sessionsOn(busy+1, "other", 1)[0]
	wantStatus(t, call(t, http.MethodPost, url+sessionPath(other, "/messages"), appendBody("m1")), http.StatusCreated)

	letGo()
	for _, r := range bg.wait() {
		wantStatus(t, r, http.StatusCreated)
	}
	if got := st.applies.Load(); got != bound+1 {
		t.Fatalf("%d applies reached the store, want %d (held) + 1 (other shard)", got, bound+1)
	}
	wantError(t, call(t, http.MethodGet, url+sessionPath(shed), ""), http.StatusNotFound, httpapi.CodeSessionNotFound)
	r = call(t, http.MethodPost, url+sessionPath(shed, "/messages"), appendBody("m1"))
	wantStatus(t, r, http.StatusCreated)
	var out appendResp
	decode(t, r, &out)
	if len(out.Messages) != 1 || out.Messages[0].Seq != 1 {
		t.Fatalf("retry after the shed: %s", r)
	}
	for _, id := range held {
		wantStatus(t, call(t, http.MethodGet, url+sessionPath(id), ""), http.StatusOK)
	}

	// Every slot came back, shed requests' included: the shard takes its
	// whole bound in flight again.
	letGo = st.hold(t, busy)
	bg = &background{}
	for _, id := range held {
		bg.do(t, http.MethodGet, url+sessionPath(id), "")
	}
	st.awaitWaiting(t, bound)
	letGo()
	for _, r := range bg.wait() {
		wantStatus(t, r, http.StatusOK)
	}
}

// TestFullNodeSheds503OverloadedOnEveryShard holds the node-wide bound with
// operations on different shards: a request for yet another shard, below
// its own shard's bound, is shed too.
func TestFullNodeSheds503OverloadedOnEveryShard(t *testing.T) {
	st := newFakeStore(testNodeID, testShardCount)
	url := serveFake(t, st, 10, 2, nil)
	var letGo []func()
	bg := &background{}
	for s := uint32(0); s < 2; s++ {
		letGo = append(letGo, st.hold(t, s))
		bg.do(t, http.MethodPost, url+sessionPath(st.sessionsOn(s, "held", 1)[0], "/messages"), appendBody("m1"))
	}
	st.awaitWaiting(t, 2)

	free := st.sessionsOn(3, "free", 1)[0]
	start := time.Now()
	r := call(t, http.MethodPost, url+sessionPath(free, "/messages"), appendBody("m1"))
	wantOverloaded(t, r, time.Since(start))
	if got := st.applies.Load(); got != 2 {
		t.Fatalf("%d applies reached the store, want the 2 held", got)
	}

	for _, f := range letGo {
		f()
	}
	for _, r := range bg.wait() {
		wantStatus(t, r, http.StatusCreated)
	}
	wantStatus(t, call(t, http.MethodPost, url+sessionPath(free, "/messages"), appendBody("m1")), http.StatusCreated)
}

// TestForwardingNodeDoesNotCountTheLeadersWork sends requests through a
// node that leads nothing to the shard leader. The forwarding node's own
// bound (1) does not limit them: the leader alone counts and sheds, and its
// 503 overloaded reaches the client through the forwarding node with
// Retry-After.
func TestForwardingNodeDoesNotCountTheLeadersWork(t *testing.T) {
	const bound = 3
	leader := newFakeStore("leader", testShardCount)
	leaderURL := serveFake(t, leader, bound, 100, nil)
	proxy := newFakeStore(testNodeID, testShardCount)
	proxyURL := serveFake(t, proxy, 1, 1, &fakeCluster{leader: "leader", leaderAddr: strings.TrimPrefix(leaderURL, "http://")})

	const busy = uint32(2)
	ids := leader.sessionsOn(busy, "fwd", bound+1)
	letGo, bg := fillShard(t, leader, busy, proxyURL, ids[:bound])

	start := time.Now()
	r := call(t, http.MethodPost, proxyURL+sessionPath(ids[bound], "/messages"), appendBody("m1"))
	wantOverloaded(t, r, time.Since(start))
	if got := r.Header.Get("X-Sessiond-Forwarded-By"); got != testNodeID {
		t.Errorf("%s: X-Sessiond-Forwarded-By %q; the leader should have shed it", r, got)
	}
	if got := r.Header.Get("X-Sessiond-Node"); got != "leader" {
		t.Errorf("%s: X-Sessiond-Node %q, want leader", r, got)
	}

	letGo()
	for _, r := range bg.wait() {
		wantStatus(t, r, http.StatusCreated)
	}
	if proxy.calls.Load() != 0 || leader.applies.Load() != bound {
		t.Fatalf("store calls: forwarding node %d, leader %d applies (want 0, %d)", proxy.calls.Load(), leader.applies.Load(), bound)
	}
	wantStatus(t, call(t, http.MethodPost, proxyURL+sessionPath(ids[bound], "/messages"), appendBody("m1")), http.StatusCreated)
}
