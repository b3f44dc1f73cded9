package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/shard"
)

// The tests of forwarding, redirects and error mapping run the HTTP layer
// over in-memory fakes of the interfaces it declares (fakeStore,
// fakeCluster, failingStore, failingReplicas): no raft, no gossip. Two or
// three such nodes talk real HTTP on loopback.

// received is a request as it arrived at a node, before the API saw it.
type received struct {
	method, uri   string
	hops          string // X-Sessiond-Hops
	contentLength int64
	body          []byte
}

// recorder keeps every request that reaches a node, body included, and
// passes it on unchanged.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	got  []received
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec.mu.Lock()
	rec.got = append(rec.got, received{method: r.Method, uri: r.RequestURI, hops: r.Header.Get("X-Sessiond-Hops"),
		contentLength: r.ContentLength, body: b})
	rec.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(b))
	rec.next.ServeHTTP(w, r)
}

func (rec *recorder) requests() []received {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]received(nil), rec.got...)
}

// peer is one node of a fake cluster: its HTTP address is known before it
// serves, so that nodes can name each other as leaders.
type peer struct {
	srv  *httptest.Server
	url  string
	addr string // host:port, as cluster state names it
	rec  *recorder
}

func newPeer(t *testing.T) *peer {
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	return &peer{srv: srv, url: "http://" + addr, addr: addr}
}

// serve starts the API over st and cl (nil: a standalone node); configure,
// when given, adjusts the configuration first.
func (p *peer) serve(t *testing.T, st httpapi.Store, cl httpapi.Cluster, configure ...func(*httpapi.Config)) *peer {
	cfg := httpapi.DefaultConfig()
	cfg.Logger = testLogger(t)
	if cl != nil {
		cfg.Cluster = cl
	}
	for _, f := range configure {
		f(&cfg)
	}
	p.rec = &recorder{next: httpapi.New(st, cfg)}
	p.srv.Config.Handler = p.rec
	p.srv.Start()
	return p
}

// wantNothingReceived fails the test if any request reached p.
func (p *peer) wantNothingReceived(t *testing.T) {
	t.Helper()
	if got := p.rec.requests(); len(got) > 0 {
		t.Fatalf("%d requests reached %s, want none; first %s %s", len(got), p.addr, got[0].method, got[0].uri)
	}
}

// failingStore is a fakeStore whose Apply and Read fail with err, or whose
// Apply answers res, when set.
type failingStore struct {
	*fakeStore
	err error
	res *fsm.Result
}

func (f *failingStore) Apply(ctx context.Context, s uint32, cmd *fsm.Command) (*fsm.Result, error) {
	if f.err != nil {
		return nil, f.err
	}
	if f.res != nil {
		return f.res, nil
	}
	return f.fakeStore.Apply(ctx, s, cmd)
}

func (f *failingStore) Read(ctx context.Context, s uint32, c shard.Consistency) (*fsm.FSM, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.fakeStore.Read(ctx, s, c)
}

// failingReplicas is an httpapi.Replicas whose every call fails with err.
type failingReplicas struct{ err error }

func (f failingReplicas) CreateReplica(uint32) error                { return f.err }
func (f failingReplicas) DropReplica(context.Context, uint32) error { return f.err }
func (f failingReplicas) ReplicaStatus(uint32) (cluster.ReplicaStatus, error) {
	return cluster.ReplicaStatus{}, f.err
}
func (f failingReplicas) Membership(uint32) (cluster.Membership, error) {
	return cluster.Membership{}, f.err
}
