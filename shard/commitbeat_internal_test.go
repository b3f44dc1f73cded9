package shard

import (
	"io"
	"log/slog"
	"net"
	"net/rpc"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestACommitIndexIsSentOnlyUpToWhatTheFollowerAcceptedInTheSameTerm: a
// heartbeat skips raft's log-matching check, so the commit index it
// carries is capped by the last append the follower accepted in the
// heartbeat's term and by the leader's commit index while it still leads
// in that term; an index is sent until the follower accepted it.
func TestACommitIndexIsSentOnlyUpToWhatTheFollowerAcceptedInTheSameTerm(t *testing.T) {
	var c commitTracker
	commit, leading := uint64(0), true
	committed := func(term uint64) (uint64, bool) { return commit, leading }
	accepted := func(term, prev, last, leaderCommit uint64, ok bool) {
		req := &raft.AppendEntriesRequest{Term: term, PrevLogEntry: prev, LeaderCommitIndex: leaderCommit}
		for i := prev + 1; i <= last; i++ {
			req.Entries = append(req.Entries, &raft.Log{Index: i, Term: term})
		}
		c.answered("f", req, &raft.AppendEntriesResponse{Term: term, Success: ok, LastLog: last + 100})
	}

	commit = 20
	if got := c.due("f", 3, committed); got != 0 {
		t.Fatalf("before any accepted append: %d, want nothing", got)
	}
	accepted(3, 0, 10, 4, true)
	if got := c.due("f", 3, committed); got != 10 {
		t.Fatalf("after an append up to 10 with commit 20: %d, want 10 (the follower's extra entries do not count)", got)
	}
	if got := c.due("f", 3, committed); got != 10 {
		t.Fatalf("again before the follower accepted it: %d, want 10 once more", got)
	}
	c.told("f", 3, 10)
	if got := c.due("f", 3, committed); got != 0 {
		t.Fatalf("the same commit once the follower accepted it: %d, want nothing", got)
	}
	accepted(3, 10, 30, 10, true)
	if got := c.due("f", 3, committed); got != 20 {
		t.Fatalf("after an append up to 30 with commit 20: %d, want 20", got)
	}
	c.told("f", 3, 20)
	accepted(3, 30, 35, 35, true)
	commit = 40
	if got := c.due("f", 3, committed); got != 0 {
		t.Fatalf("an append already told it 35 of 35: %d, want nothing", got)
	}

	accepted(3, 35, 50, 40, true)
	commit, leading = 50, false
	if got := c.due("f", 3, committed); got != 0 {
		t.Fatalf("no longer leading in term 3: %d, want nothing", got)
	}
	leading = true
	if got := c.due("f", 3, committed); got != 50 {
		t.Fatalf("leading again in term 3: %d, want 50", got)
	}
	c.told("f", 3, 50)

	accepted(3, 50, 60, 50, true)
	accepted(3, 60, 60, 50, false) // a rejected append: the logs differ
	commit = 60
	if got := c.due("f", 3, committed); got != 0 {
		t.Fatalf("after a rejected append: %d, want nothing", got)
	}

	if got := c.due("f", 4, committed); got != 0 {
		t.Fatalf("a new term before any append in it: %d, want nothing", got)
	}
	accepted(3, 60, 70, 60, true) // a late answer from the old term
	if got := c.due("f", 4, committed); got != 0 {
		t.Fatalf("an append of an older term counted: %d", got)
	}
	accepted(4, 60, 61, 60, true)
	commit = 61
	if got := c.due("f", 4, committed); got != 61 {
		t.Fatalf("after an append in term 4: %d, want 61", got)
	}
	if got := c.due("f", 3, committed); got != 0 {
		t.Fatalf("a heartbeat of an older term: %d, want nothing", got)
	}
}

// beatRecorder is a peer's node service that records the heartbeats it is
// sent; oldNodeService has no Node.CommitHeartbeats, as a node of an
// earlier version.
type beatRecorder struct {
	mu    sync.Mutex
	beats map[string][]uint64 // method -> commit indexes received
}

func (r *beatRecorder) record(method string, args HeartbeatArgs, reply *HeartbeatReply) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range args.Beats {
		r.beats[method] = append(r.beats[method], b.Req.LeaderCommitIndex)
	}
	reply.Results = make([]HeartbeatResult, len(args.Beats))
	for i, b := range args.Beats {
		reply.Results[i].Resp = raft.AppendEntriesResponse{Term: b.Req.Term, Success: true}
	}
}

func (r *beatRecorder) got(method string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.beats[method]...)
}

type oldNodeService struct{ r *beatRecorder }

func (s *oldNodeService) Heartbeats(args HeartbeatArgs, reply *HeartbeatReply) error {
	s.r.record("Heartbeats", args, reply)
	return nil
}

type newNodeService struct{ oldNodeService }

func (s *newNodeService) CommitHeartbeats(args HeartbeatArgs, reply *CommitHeartbeatReply) error {
	s.r.record("CommitHeartbeats", args, &reply.HeartbeatReply)
	reply.Leases = make([]time.Duration, len(args.Beats))
	return nil
}

// fakePeer serves svc as the node service of a raft port on loopback.
func fakePeer(t *testing.T, svc any) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	mux := NewMux(ln, ln.Addr(), 1, logger)
	layer, err := mux.Listen(nodeServiceID)
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Node", svc); err != nil {
		t.Fatal(err)
	}
	go serveNodeRPC(layer, srv.ServeCodec, nil, logger)
	go mux.Serve()
	t.Cleanup(func() { mux.Close() })
	return ln.Addr().String()
}

// TestAPeerOfAnEarlierVersionGetsPlainHeartbeats: a node without
// Node.CommitHeartbeats would take a commit index on raft's fast path, so
// it must never receive one; its heartbeats still go through, and a
// current node receives the commit index.
func TestAPeerOfAnEarlierVersionGetsPlainHeartbeats(t *testing.T) {
	old, cur := &beatRecorder{beats: map[string][]uint64{}}, &beatRecorder{beats: map[string][]uint64{}}
	oldAddr := fakePeer(t, &oldNodeService{old})
	curAddr := fakePeer(t, &newNodeService{oldNodeService{cur}})

	sender := newTestSender(t, 50*time.Millisecond)

	beat := func(addr string, commit uint64) {
		t.Helper()
		req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("leader"), Addr: []byte("leader:1")}, Term: 5}
		var resp raft.AppendEntriesResponse
		call := &heartbeatCall{req: req, resp: &resp, done: make(chan error, 1),
			commit: func() (uint64, uint64) { return commit, 2 }}
		answered, err := sender.send(addr, call, false, nil)
		if !answered || err != nil || !resp.Success {
			t.Fatalf("heartbeat to %s: %v (success %v)", addr, err, resp.Success)
		}
	}
	beat(oldAddr, 7)
	beat(oldAddr, 8) // no second try within plainHeartbeatsFor
	beat(curAddr, 9)

	if got := old.got("Heartbeats"); len(got) != 2 || got[0] != 0 || got[1] != 0 {
		t.Fatalf("the older node received commit indexes %v, want two plain heartbeats", got)
	}
	if got := cur.got("CommitHeartbeats"); len(got) != 1 || got[0] != 9 {
		t.Fatalf("the current node received %v through CommitHeartbeats, want [9]", got)
	}
	if got := cur.got("Heartbeats"); len(got) != 0 {
		t.Fatalf("the current node received plain heartbeats %v", got)
	}
}

// TestOnlyAWellFormedCommitLeavesAHeartbeatForRaftsLoop: a commit goes to
// raft's loop only with the committed entry as the one raft checks its log
// against; anything else is left as it came, which is no heartbeat, so the
// node service refuses it rather than give it to raft's fast path.
func TestOnlyAWellFormedCommitLeavesAHeartbeatForRaftsLoop(t *testing.T) {
	beat := func() *raft.AppendEntriesRequest {
		return &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("l"), Addr: []byte("l:1")}, Term: 4}
	}
	req := beat()
	withCommit(req, 12, 3)
	notice := splitCommit(req)
	if !isHeartbeat(req) {
		t.Fatalf("after the split: %+v is not a plain heartbeat", req)
	}
	if notice == nil || notice.PrevLogEntry != 12 || notice.PrevLogTerm != 3 || notice.LeaderCommitIndex != 12 || notice.Term != 4 {
		t.Fatalf("notice %+v, want commit 12 checked against entry 12 of term 3, in term 4", notice)
	}
	for name, bad := range map[string]func(*raft.AppendEntriesRequest){
		"commit without its entry":    func(r *raft.AppendEntriesRequest) { r.LeaderCommitIndex = 12 },
		"entry other than the commit": func(r *raft.AppendEntriesRequest) { withCommit(r, 12, 3); r.PrevLogEntry = 11 },
		"entry of term 0":             func(r *raft.AppendEntriesRequest) { withCommit(r, 12, 0) },
		"entries":                     func(r *raft.AppendEntriesRequest) { withCommit(r, 12, 3); r.Entries = []*raft.Log{{Index: 13}} },
	} {
		req := beat()
		bad(req)
		if n := splitCommit(req); n != nil {
			t.Errorf("%s: handed raft's loop %+v", name, n)
		}
		if isHeartbeat(req) {
			t.Errorf("%s: left as a heartbeat for the fast path: %+v", name, req)
		}
	}
}
