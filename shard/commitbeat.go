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
// leader's transport adds the commit index to the next heartbeat to a
// follower that has not been told it, and the follower hands it to raft's
// loop; CommitTimeout can then be as long as the heartbeat timeout.
//
// This is only safe for entries the follower is known to hold as the
// leader does. A heartbeat skips raft's log-matching check, and raft
// commits min(commit, its last index) of whatever log it has. So the
// leader sends at most the last index of an append the follower accepted
// in the same term (after a successful append the follower's log matches
// the leader's up to there, and within a term only this leader writes to
// it), and at most its own commit index, read while it still leads in
// that term (a replica deposed and re-elected may have replaced entries
// the follower still holds from the earlier term).
//
// raft handles a heartbeat outside its loop (processHeartbeat), where a
// commit index must not go. The follower therefore answers the heartbeat
// with the commit index taken out, as before, and hands a copy carrying
// the commit index to raft's loop as an ordinary AppendEntries, without
// waiting for it. A node of an earlier version would take such a heartbeat
// on raft's fast path, so heartbeats carrying commit indexes go in a node
// RPC of their own, Node.CommitHeartbeats, which such a node refuses; the
// sender then falls back to plain heartbeats to that peer for a while.

// commitHandoff bounds how long a commit index waits for a busy raft loop.
// Under load the next append carries it anyway.
const commitHandoff = 100 * time.Millisecond

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
	told  uint64 // highest commit index sent to it this term
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

// due returns the commit index to add to a heartbeat to follower id in
// term, or 0 when it has nothing new to learn. committed reports the
// leader's commit index and whether it still leads in term; it is called
// only when the answer may matter. A returned index counts as told.
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
	p.told = commit
	return commit
}

// committedWhileLeading is the commit source of a replica: its commit
// index, and whether it still led in term after reading it. The order
// matters: if the term has not moved since, the leader's log has only
// grown since the follower's matching append, so the two agree up to the
// smaller of the commit index and that append.
func committedWhileLeading(r *raft.Raft) func(term uint64) (uint64, bool) {
	return func(term uint64) (uint64, bool) {
		commit := r.CommitIndex()
		return commit, r.State() == raft.Leader && r.CurrentTerm() == term
	}
}

// setCommitSource lets heartbeats carry r's commit index.
func (t *heartbeatTransport) setCommitSource(r *raft.Raft) {
	src := committedWhileLeading(r)
	t.commitSource.Store(&src)
}

// commitFor is the commit index to add to a heartbeat to id, or 0.
func (t *heartbeatTransport) commitFor(id raft.ServerID, term uint64) uint64 {
	src := t.commitSource.Load()
	if src == nil {
		return 0
	}
	return t.commits.due(id, term, *src)
}

// handCommit gives raft's loop an AppendEntries carrying only a commit
// index, without waiting for it to be taken or answered.
func (t *heartbeatTransport) handCommit(req *raft.AppendEntriesRequest) {
	go func() {
		timer := time.NewTimer(commitHandoff)
		defer timer.Stop()
		select {
		case t.rpcs <- raft.RPC{Command: req, RespChan: make(chan raft.RPCResponse, 1)}:
		case <-t.stop:
		case <-timer.C:
		}
	}()
}

// refusedCommitHeartbeats reports an error from a node that has no
// Node.CommitHeartbeats.
func refusedCommitHeartbeats(err error) bool {
	return err != nil && strings.Contains(err.Error(), "can't find method")
}
