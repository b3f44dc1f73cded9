package shard

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// An idle leader still sends every follower an empty append each Commit
// interval (raft's CommitTimeout) to tell it the commit index. Once the
// follower has acknowledged that commit index, sending the same append again
// tells it nothing, and the leader learns nothing from the answer that the
// heartbeats to that follower do not tell it already; yet with 16 shards
// these repeats were a fifth of an idle cluster's CPU. quietAppends answers
// such a repeat in place of the follower, with the follower's own earlier
// answer, when all of these hold:
//
//   - the append is empty and identical (term, previous entry, commit index)
//     to the last one the follower acknowledged, and that answer said the
//     follower's log ends exactly at the previous entry;
//   - that answer is younger than quietRefresh, so a follower that lost its
//     commit index (a restart) learns it again within that time;
//   - a heartbeat of the same term was acknowledged by the follower within
//     the lease: the follower is reachable and still follows this term. (A
//     follower that moved on to a newer term answers heartbeats with that
//     term, which ends the quiet, and the next real append makes the leader
//     step down.)
//   - the replica is not confirming its leadership (heartbeatTransport's
//     urgent count): raft counts a successful append as a confirmation.
//
// Raft's answer to a successful empty append is to record the contact and
// confirm leadership to waiting reads; the conditions above keep both true
// to within the lease, as an answer to a heartbeat in flight would.
type quietAppends struct {
	lease time.Duration // how recent an acknowledged heartbeat must be

	mu    sync.Mutex
	peers map[raft.ServerID]*quietPeer
}

// quietRefresh is how often a repeated empty append goes to the follower
// after all.
const quietRefresh = time.Second

type quietPeer struct {
	acked    bool // req and resp hold an acknowledged empty append
	req      raft.AppendEntriesRequest
	resp     raft.AppendEntriesResponse
	ackedAt  time.Time
	beatTerm uint64 // term of the last heartbeat the follower acknowledged
	beatAt   time.Time
}

func newQuietAppends(lease time.Duration) *quietAppends {
	return &quietAppends{lease: lease, peers: map[raft.ServerID]*quietPeer{}}
}

func (q *quietAppends) peer(id raft.ServerID) *quietPeer {
	p := q.peers[id]
	if p == nil {
		p = &quietPeer{}
		q.peers[id] = p
	}
	return p
}

// answer fills resp and reports true when req may be answered without
// sending it.
func (q *quietAppends) answer(id raft.ServerID, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse, now time.Time) bool {
	if len(req.Entries) != 0 || req.LeaderCommitIndex == 0 {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.peers[id]
	if p == nil || !p.acked || !sameEmptyAppend(&p.req, req) ||
		now.Sub(p.ackedAt) >= quietRefresh ||
		p.beatTerm != req.Term || now.Sub(p.beatAt) >= q.lease {
		return false
	}
	*resp = p.resp
	return true
}

// sent records the follower's answer to an append that was sent.
func (q *quietAppends) sent(id raft.ServerID, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.peer(id)
	p.acked = len(req.Entries) == 0 && req.LeaderCommitIndex > 0 &&
		resp.Success && resp.Term == req.Term && resp.LastLog == req.PrevLogEntry
	if p.acked {
		p.req = raft.AppendEntriesRequest{Term: req.Term, PrevLogEntry: req.PrevLogEntry,
			PrevLogTerm: req.PrevLogTerm, LeaderCommitIndex: req.LeaderCommitIndex}
		p.resp = *resp
		p.ackedAt = now
	}
}

// heartbeat records the follower's answer to a heartbeat.
func (q *quietAppends) heartbeat(id raft.ServerID, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.peer(id)
	if resp.Success && resp.Term == req.Term {
		p.beatTerm, p.beatAt = req.Term, now
	} else {
		p.beatTerm, p.acked = 0, false
	}
}

// forget drops what is known of every follower: the replica lost or gave
// up leadership, or failed to reach a follower.
func (q *quietAppends) forget(id raft.ServerID) {
	q.mu.Lock()
	delete(q.peers, id)
	q.mu.Unlock()
}

func sameEmptyAppend(a, b *raft.AppendEntriesRequest) bool {
	return a.Term == b.Term && a.PrevLogEntry == b.PrevLogEntry &&
		a.PrevLogTerm == b.PrevLogTerm && a.LeaderCommitIndex == b.LeaderCommitIndex
}
