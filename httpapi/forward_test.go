package httpapi_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/shard"
)

// hopHeader is the header a forwarding node counts its forwards in.
const hopHeader = "X-Sessiond-Hops"

var noRedirectClient = noRedirects(fakeClient)

// wantNoLeader requires the 503 no_leader that tells a client to retry.
func wantNoLeader(t *testing.T, r *response) {
	t.Helper()
	wantError(t, r, http.StatusServiceUnavailable, httpapi.CodeNoLeader)
	if ra := r.Header.Get("Retry-After"); ra != "1" {
		t.Errorf("%s: Retry-After %q, want 1", r, ra)
	}
}

// A request that arrives having been forwarded as often as the limit allows
// (two hops) is answered 503 no_leader, whatever its route or mode, and is
// not forwarded again: the leader this node knows receives nothing, and
// nothing reaches this node's store.
func TestAForwardedRequestBeyondTheHopLimitIsRefused(t *testing.T) {
	leader := newPeer(t).serve(t, newFakeStore("b", testShardCount), nil)
	st := newFakeStore("a", testShardCount)
	a := newPeer(t).serve(t, st, &fakeCluster{leader: "b", leaderAddr: leader.addr})
	for _, k := range []struct {
		name, method, path, body string
		hdr                      []string
	}{
		{"write at the limit", http.MethodPost, sessionPath("s1", "/messages"), appendBody("m1"), []string{hopHeader, "2"}},
		{"read beyond the limit", http.MethodGet, sessionPath("s1"), "", []string{hopHeader, "3"}},
		{"redirect asked at the limit", http.MethodGet, sessionPath("s1"), "", []string{hopHeader, "2", "X-Sessiond-Redirect", "1"}},
		{"leader-only operation at the limit", http.MethodPost, "/v1/shards/1/transfer-leadership", "", []string{hopHeader, "2"}},
	} {
		t.Run(k.name, func(t *testing.T) {
			wantNoLeader(t, callWith(t, noRedirectClient, k.method, a.url+k.path, k.body, k.hdr...))
		})
	}
	leader.wantNothingReceived(t)
	if n := st.calls.Load(); n != 0 {
		t.Fatalf("%d refused requests reached the store", n)
	}
}

// Each forward adds one to the hop count the request arrived with (none, or
// a header that is not a count, is zero), so the next node knows how often
// it has been forwarded.
func TestEveryForwardCountsOneHop(t *testing.T) {
	leader := newPeer(t).serve(t, newFakeStore("b", testShardCount), nil)
	a := newPeer(t).serve(t, newFakeStore("a", testShardCount), &fakeCluster{leader: "b", leaderAddr: leader.addr})
	for i, k := range []struct{ sent, want string }{{"", "1"}, {"1", "2"}, {"junk", "1"}, {"-4", "1"}} {
		r := callWith(t, fakeClient, http.MethodPost, a.url+sessionPath("s1", "/messages"), appendBody("m1"), hopHeader, k.sent)
		if r.Status != http.StatusCreated && r.Status != http.StatusOK {
			t.Fatalf("hops %q: %s: status %d", k.sent, r, r.Status)
		}
		if got := leader.rec.requests()[i].hops; got != k.want {
			t.Errorf("sent with hops %q, the leader saw %q, want %q", k.sent, got, k.want)
		}
	}
}

// Two nodes that each take the other for the shard's leader (their views
// of leadership disagree for a moment) do not pass a request back and forth
// for ever: it is forwarded twice and then refused with no_leader, and
// neither store sees it.
func TestNodesThatNameEachOtherLeaderRefuseARequestAfterTwoForwards(t *testing.T) {
	a, b := newPeer(t), newPeer(t)
	sa, sb := newFakeStore("a", testShardCount), newFakeStore("b", testShardCount)
	a.serve(t, sa, &fakeCluster{leader: "b", leaderAddr: b.addr})
	b.serve(t, sb, &fakeCluster{leader: "a", leaderAddr: a.addr})

	r := call(t, http.MethodPost, a.url+sessionPath("s1", "/messages"), appendBody("m1"))
	wantNoLeader(t, r)
	if got := r.Header.Get("X-Sessiond-Node"); got != "a" {
		t.Errorf("%s: answered by %q, want a (after a→b→a)", r, got)
	}
	hops := func(p *peer) (h []string) {
		for _, q := range p.rec.requests() {
			h = append(h, q.hops)
		}
		return h
	}
	if got, want := strings.Join(hops(a), ","), ",2"; got != want {
		t.Errorf("a received hops %q, want %q", got, want)
	}
	if got, want := strings.Join(hops(b), ","), "1"; got != want {
		t.Errorf("b received hops %q, want %q", got, want)
	}
	if sa.calls.Load()+sb.calls.Load() != 0 {
		t.Fatalf("a request no node may serve reached a store")
	}
}

// A node asked to redirect (X-Sessiond-Redirect: 1 or ?redirect=1) answers
// 307 with the leader's address, this node's scheme to other nodes, and the
// request's own path and query, so that the client repeats the same request
// there. The leader receives nothing from this node.
func TestARedirectPointsAtTheLeaderWithTheSamePathAndQuery(t *testing.T) {
	leader := newPeer(t).serve(t, newFakeStore("b", testShardCount), nil)
	plain := newPeer(t).serve(t, newFakeStore("a", testShardCount), &fakeCluster{leader: "b", leaderAddr: leader.addr})
	withTLS := newPeer(t).serve(t, newFakeStore("a", testShardCount), &fakeCluster{leader: "b", leaderAddr: leader.addr},
		func(cfg *httpapi.Config) { cfg.PeerTLS = &tls.Config{} })
	redirect := []string{"X-Sessiond-Redirect", "1"}
	for _, k := range []struct {
		name, method, path string
		hdr                []string
		node               *peer
		want               string
	}{
		{"header, read with a query", http.MethodGet, sessionPath("s1", "/messages") + "?after=3&limit=5", redirect, plain,
			"http://" + leader.addr + sessionPath("s1", "/messages") + "?after=3&limit=5"},
		{"query parameter, write", http.MethodPost, sessionPath("s1", "/messages") + "?redirect=1", nil, plain,
			"http://" + leader.addr + sessionPath("s1", "/messages") + "?redirect=1"},
		{"leader-only operation", http.MethodPost, "/v1/shards/1/transfer-leadership?to=c&redirect=1", nil, plain,
			"http://" + leader.addr + "/v1/shards/1/transfer-leadership?to=c&redirect=1"},
		{"nodes reached over TLS", http.MethodDelete, sessionPath("s1"), redirect, withTLS,
			"https://" + leader.addr + sessionPath("s1")},
	} {
		t.Run(k.name, func(t *testing.T) {
			r := callWith(t, noRedirectClient, k.method, k.node.url+k.path, "", k.hdr...)
			wantStatus(t, r, http.StatusTemporaryRedirect)
			if got := r.Header.Get("Location"); got != k.want {
				t.Errorf("Location %q, want %q", got, k.want)
			}
		})
	}
	leader.wantNothingReceived(t)
}

// movedStore is a replica that lost leadership of every shard: each
// operation fails with the NotLeaderError that says nothing was applied.
func movedStore(node, leader string) *failingStore {
	return &failingStore{fakeStore: newFakeStore(node, testShardCount), err: &shard.NotLeaderError{Shard: 1, LeaderID: leader}}
}

// A body as a client may send it, with the whitespace, escapes and order
// that parsing and validating it would not keep.
const oddAppend = " \n{ \"content\" : \"h\\u00e9llo \\\"you\\\"\",\"role\":\"user\",  \"id\":\"m1\" }\r\n\n"

// A write served by a replica that turns out not to lead the shard (the
// leadership moved after routing) was not applied, so it is forwarded to
// the leader the node now knows: with the body the client sent, byte for
// byte, although the handler has read and parsed it already, and its
// length. The leader's answer reaches the client.
func TestAWriteThatFindsTheLeaderMovedIsForwardedWithItsBodyByteForByte(t *testing.T) {
	leaderStore := newFakeStore("b", testShardCount)
	leader := newPeer(t).serve(t, leaderStore, nil)
	a := newPeer(t).serve(t, movedStore("a", "b"), &fakeCluster{leader: "b", leaderAddr: leader.addr, replica: true})
	id := "moved-1"
	for _, k := range []struct {
		method, path, body string
		want               int
	}{
		{http.MethodPost, sessionPath(id, "/messages"), oddAppend, http.StatusCreated},
		{http.MethodPut, sessionPath(id), "{\"step\" :\t\"search\" ,\"n\":1.50}\n", http.StatusOK},
		{http.MethodPatch, sessionPath(id), " {\"n\": null, \"tags\":[ \"a\" ]} ", http.StatusOK},
		{http.MethodPut, sessionPath(id, "/state/step"), "\t\"done\"\n", http.StatusOK},
		{http.MethodPut, sessionPath(id, "/pending-match"), "{ \"with\" : \"u2\" }", http.StatusOK},
		{http.MethodGet, sessionPath(id), "", http.StatusOK},
	} {
		before := len(leader.rec.requests())
		r := call(t, k.method, a.url+k.path, k.body)
		wantStatus(t, r, k.want)
		if got := r.Header.Get("X-Sessiond-Node"); got != "b" {
			t.Errorf("%s: answered by %q, want the leader b", r, got)
		}
		got := leader.rec.requests()
		if len(got) != before+1 {
			t.Fatalf("%s: the leader received %d requests, want 1", r, len(got)-before)
		}
		q := got[before]
		if !bytes.Equal(q.body, []byte(k.body)) {
			t.Errorf("%s: the leader received body %q, want %q", r, q.body, k.body)
		}
		if k.body != "" && q.contentLength != int64(len(k.body)) {
			t.Errorf("%s: the leader received Content-Length %d, want %d", r, q.contentLength, len(k.body))
		}
		if q.hops != "1" {
			t.Errorf("%s: the leader received hops %q, want 1", r, q.hops)
		}
	}
	if n := leaderStore.applies.Load(); n != 5 {
		t.Fatalf("the leader applied %d writes, want 5", n)
	}
}

// A body read by every node on the way (each a replica that finds the
// leadership moved on) still reaches the last node exactly as the client
// sent it.
func TestABodyReadOnEveryHopReachesTheLeaderUnchanged(t *testing.T) {
	a, b, c := newPeer(t), newPeer(t), newPeer(t)
	cStore := newFakeStore("c", testShardCount)
	c.serve(t, cStore, nil)
	b.serve(t, movedStore("b", "c"), &fakeCluster{leader: "c", leaderAddr: c.addr, replica: true})
	a.serve(t, movedStore("a", "b"), &fakeCluster{leader: "b", leaderAddr: b.addr, replica: true})

	r := call(t, http.MethodPost, a.url+sessionPath("s1", "/messages"), oddAppend)
	wantStatus(t, r, http.StatusCreated)
	for _, p := range []struct {
		node *peer
		hops string
	}{{a, ""}, {b, "1"}, {c, "2"}} {
		got := p.node.rec.requests()
		if len(got) != 1 || got[0].hops != p.hops || !bytes.Equal(got[0].body, []byte(oddAppend)) {
			t.Errorf("%s received %+v, want one request with hops %q and the client's body", p.node.addr, got, p.hops)
		}
	}
	if n := cStore.applies.Load(); n != 1 {
		t.Fatalf("the leader applied %d writes, want 1", n)
	}
}

// A replica that finds the leadership moved on a request already forwarded
// twice answers no_leader (nothing was applied) instead of forwarding it a
// third time.
func TestAMovedLeaderIsNotFollowedBeyondTheHopLimit(t *testing.T) {
	leader := newPeer(t).serve(t, newFakeStore("b", testShardCount), nil)
	a := newPeer(t).serve(t, movedStore("a", "b"), &fakeCluster{leader: "b", leaderAddr: leader.addr, replica: true})
	wantNoLeader(t, callWith(t, fakeClient, http.MethodPost, a.url+sessionPath("s1", "/messages"), oddAppend, hopHeader, "2"))
	wantNoLeader(t, callWith(t, fakeClient, http.MethodGet, a.url+sessionPath("s1"), "", hopHeader, "2"))
	leader.wantNothingReceived(t)
}

// A drain request for another node is forwarded to that node once it is
// alive; one that has been forwarded as often as the limit allows is
// refused with no_leader and not forwarded again.
func TestADrainRequestBeyondTheHopLimitIsRefused(t *testing.T) {
	var drains atomic.Int64
	b := newPeer(t).serve(t, newFakeStore("b", testShardCount), &fakeCluster{local: true},
		func(cfg *httpapi.Config) { cfg.OnDrain = func() { drains.Add(1) } })
	members := []cluster.MemberStatus{{ID: "b", State: cluster.StateAlive, HTTPAddr: b.addr}}
	a := newPeer(t).serve(t, newFakeStore("a", testShardCount), &fakeCluster{local: true, members: members})

	wantNoLeader(t, callWith(t, fakeClient, http.MethodPost, a.url+"/v1/nodes/b/drain", "", hopHeader, "2"))
	b.wantNothingReceived(t)
	if drains.Load() != 0 {
		t.Fatal("a refused drain request drained the node")
	}

	r := call(t, http.MethodPost, a.url+"/v1/nodes/b/drain", "")
	wantStatus(t, r, http.StatusAccepted)
	if got := b.rec.requests(); len(got) != 1 || got[0].hops != "1" || drains.Load() != 1 {
		t.Fatalf("b received %+v and drained %d times; want one request with hops 1, one drain", got, drains.Load())
	}
}

// A forward that fails is answered by the forwarding node, which says
// whether the request may have been applied: one that never reached the
// leader was not (no_leader, retry), a read was not either (timeout), and a
// write the leader received before it went away may have been
// (outcome_unknown, only an idempotent retry is safe).
func TestAFailedForwardSaysWhetherTheWriteMayHaveBeenApplied(t *testing.T) {
	hangUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(hangUp.Close)
	for _, k := range []struct {
		name, leaderAddr, method, path, body string
		code                                 string
	}{
		{"write to a leader that cannot be reached", deadAddr(t), http.MethodPost, sessionPath("s1", "/messages"), appendBody("m1"), httpapi.CodeNoLeader},
		{"read the leader hangs up on", hangUp.Listener.Addr().String(), http.MethodGet, sessionPath("s1"), "", httpapi.CodeTimeout},
		{"write the leader hangs up on", hangUp.Listener.Addr().String(), http.MethodPost, sessionPath("s1", "/messages"), appendBody("m1"), httpapi.CodeOutcomeUnknown},
	} {
		t.Run(k.name, func(t *testing.T) {
			a := newPeer(t).serve(t, newFakeStore("a", testShardCount), &fakeCluster{leader: "b", leaderAddr: k.leaderAddr})
			r := call(t, k.method, a.url+k.path, k.body)
			wantError(t, r, http.StatusServiceUnavailable, k.code)
			if got := r.Header.Get("X-Sessiond-Node"); got != "a" {
				t.Errorf("%s: X-Sessiond-Node %q, want a, which answered", r, got)
			}
		})
	}
}
