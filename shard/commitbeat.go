package shard

import (
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Commit indexes ride on heartbeats. A follower learns that an entry
// committed only from the leader's next AppendEntries, and an idle
// hashicorp/raft leader sends one to each follower every one to two
// CommitTimeouts for that alone. Those rounds were about half of an idle
// cluster's wakeups, and a long interval would leave a follower's stale
// reads and change streams seconds behind an isolated write. So the
// leader's transport adds its commit index to the next heartbeat to a
// follower that has not been told it, and the follower hands it to raft's
// loop; CommitTimeout can then be long (Tuning.Timing makes it two
// heartbeat timeouts).
//
// The commit index travels as an AppendEntries with no entries whose
// previous entry is the committed one, with its term: raft's own
// log-matching check on the follower then guarantees that the follower's
// log agrees with the leader's up to that entry before it commits it,
// whatever happened to the follower's log since the leader last heard of
// it. The leader sends at most the last index of an append the follower
// accepted in the same term, so that the follower has the entry, and at
// most its own commit index, read while it still leads in that term.
//
// raft handles a heartbeat outside its loop (processHeartbeat), where a
// commit index must not go. The follower therefore answers the heartbeat
// with the commit taken out, as before, and hands the commit to raft's
// loop as an ordinary AppendEntries, without waiting. A node of an
// earlier version would take such a heartbeat on raft's fast path, so
// heartbeats go in a node RPC of their own, Node.CommitHeartbeats (whose
// answer also grants a read lease, lease.go), which such a node refuses;
// the sender then falls
// back to plain heartbeats to that peer for a while, and that peer's
// followers learn of commits from the commit interval's appends.

// plainHeartbeatsFor is how long a sender keeps to plain heartbeats after a
// peer refused Node.CommitHeartbeats (an older node, before its upgrade).
const plainHeartbeatsFor = time.Minute

// commitTracker is the leader's view of what each follower holds and was
// told, in one term. It is safe for concurrent use.
type commitTracker struct {
	mu    sync.Mutex
	term  uint64
	peers map[raft.ServerID]*peerCommit
}

type peerCommit struct {
	match uint64 // last index of an append the follower accepted this term
	told  uint64 // highest commit index it accepted this term
}

// peerLocked returns id's record for term, forgetting earlier terms; nil
// for a term older than the one tracked. Caller holds c.mu.
func (c *commitTracker) peerLocked(id raft.ServerID, term uint64) *peerCommit {
	if term < c.term {
		return nil
	}
	if term > c.term || c.peers == nil {
		c.term, c.peers = term, map[raft.ServerID]*peerCommit{}
	}
	p := c.peers[id]
	if p == nil {
		p = &peerCommit{}
		c.peers[id] = p
	}
	return p
}

// answered records follower id's answer to a (non-heartbeat) append.
func (c *commitTracker) answered(id raft.ServerID, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) {
	if resp.Term != req.Term {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peerLocked(id, req.Term)
	if p == nil {
		return
	}
	if !resp.Success {
		p.match = 0 // its log differs somewhere; wait for raft to repair it
		return
	}
	last := req.PrevLogEntry
	if n := len(req.Entries); n > 0 {
		last = req.Entries[n-1].Index
	}
	p.match = max(p.match, last)
	p.told = max(p.told, req.LeaderCommitIndex)
}

// told records that follower id accepted a heartbeat carrying commit.
func (c *commitTracker) told(id raft.ServerID, term, commit uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.peerLocked(id, term); p != nil {
		p.told = max(p.told, commit)
	}
}

// due returns the commit index to add to a heartbeat to follower id in
// term, or 0 when it has nothing new to learn. committed reports the
// leader's commit index and whether it still leads in term; it is called
// only when the answer may matter.
func (c *commitTracker) due(id raft.ServerID, term uint64, committed func(term uint64) (uint64, bool)) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peerLocked(id, term)
	if p == nil || p.match <= p.told {
		return 0
	}
	idx, leading := committed(term)
	commit := min(idx, p.match)
	if !leading || commit <= p.told {
		return 0
	}
	return commit
}

// commitSource is what a leader's transport reads to build a commit
// heartbeat: raft's commit index and the terms of the entries in its log.
type commitSource struct {
	raft *raft.Raft
	logs raft.LogStore
	// durable is the highest index durable in this node's log: raft's
	// commit index may run ahead of it (leaderlog.go), and followers are
	// told no commit beyond it.
	durable func() uint64
}

// committed is the replica's commit index as followers may learn it (no
// further than its durable log), and whether it still led in term after
// reading it. The order matters: if the term has not moved since, the
// leader's log has only grown since the follower's matching append.
func (c commitSource) committed(term uint64) (uint64, bool) {
	commit := min(c.raft.CommitIndex(), c.durable())
	return commit, c.raft.State() == raft.Leader && c.raft.CurrentTerm() == term
}

// termOf is the term of the entry at index, if the log still holds it.
func (c commitSource) termOf(index uint64) (uint64, bool) {
	var l raft.Log
	if err := c.logs.GetLog(index, &l); err != nil {
		return 0, false
	}
	return l.Term, true
}

// setCommitSource lets heartbeats carry r's commit index; logs is the log
// r reads (with its cache), durable what of it is on disk (see
// commitSource).
func (t *heartbeatTransport) setCommitSource(r *raft.Raft, logs raft.LogStore, durable func() uint64) {
	t.commitSource.Store(&commitSource{raft: r, logs: logs, durable: durable})
}

// durableCommit cuts a commit index to what is durable in this node's log,
// the most a follower may apply up to (leaderlog.go).
func (t *heartbeatTransport) durableCommit(commit uint64) uint64 {
	if src := t.commitSource.Load(); src != nil {
		return min(commit, src.durable())
	}
	return commit
}

// commitFor is the commit to add to a heartbeat to id in term, as the
// committed index and its entry's term, or 0, 0.
func (t *heartbeatTransport) commitFor(id raft.ServerID, term uint64) (index, indexTerm uint64) {
	src := t.commitSource.Load()
	if src == nil {
		return 0, 0
	}
	index = t.commits.due(id, term, src.committed)
	if index == 0 {
		return 0, 0
	}
	indexTerm, ok := src.termOf(index)
	if !ok {
		return 0, 0
	}
	return index, indexTerm
}

// withCommit sets req to carry commit index (whose entry has term
// indexTerm) as the follower's raft loop will check it.
func withCommit(req *raft.AppendEntriesRequest, index, indexTerm uint64) {
	req.PrevLogEntry, req.PrevLogTerm, req.LeaderCommitIndex = index, indexTerm, index
}

// splitCommit takes the commit out of a heartbeat that arrived with one,
// leaving a plain heartbeat, and returns the AppendEntries that carries
// the commit to raft's loop, or nil if it carries none (what is not a
// plain heartbeat then is refused).
func splitCommit(req *raft.AppendEntriesRequest) *raft.AppendEntriesRequest {
	index, indexTerm := req.LeaderCommitIndex, req.PrevLogTerm
	if index == 0 || req.PrevLogEntry != index || indexTerm == 0 || len(req.Entries) != 0 {
		return nil // no commit, or not one this node sends: left as it came
	}
	notice := *req
	req.PrevLogEntry, req.PrevLogTerm, req.LeaderCommitIndex = 0, 0, 0
	return &notice
}

// handCommit gives raft's loop an AppendEntries carrying only a commit,
// without waiting: a newer one replaces one raft has not taken yet.
func (t *heartbeatTransport) handCommit(req *raft.AppendEntriesRequest) {
	t.commitMu.Lock()
	if p := t.pendingCommit; p == nil || req.Term > p.Term || (req.Term == p.Term && req.LeaderCommitIndex > p.LeaderCommitIndex) {
		t.pendingCommit = req
	}
	t.commitMu.Unlock()
	select {
	case t.commitReady <- struct{}{}:
	default: // deliverCommits is already due to run
	}
}

// deliverCommits hands raft the commits handCommit leaves, one at a time,
// until the transport closes.
func (t *heartbeatTransport) deliverCommits() {
	for {
		select {
		case <-t.commitReady:
		case <-t.stop:
			return
		}
		t.commitMu.Lock()
		req := t.pendingCommit
		t.pendingCommit = nil
		t.commitMu.Unlock()
		if req == nil {
			continue
		}
		select {
		case t.rpcs <- raft.RPC{Command: req, RespChan: make(chan raft.RPCResponse, 1)}:
		case <-t.stop:
			return
		}
	}
}

// lacksMethod reports an error from a node of an earlier version that has
// no such node RPC (Node.CommitHeartbeats, Node.TimeoutNow).
func lacksMethod(err error) bool {
	return err != nil && strings.Contains(err.Error(), "can't find method")
}
