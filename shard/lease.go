package shard

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Read leases: a leader answers linearizable reads without a round of
// heartbeats while every voter of its group has accepted one of its
// heartbeats recently.
//
// A read index needs proof that no other leader can have committed a write
// the leader does not know of. A round of heartbeats answered by a quorum
// proves it, and costs a message to every follower and back per read
// round. The proof can also come from time. A follower that accepted a
// heartbeat from the leader, sent at instant T, does not start an election
// before T plus one of these, on its own clock:
//
//   - raft's own timeout: a heartbeat timeout (and one to two of them, as
//     raft draws it) of silence from the leader;
//   - a prompted election (failover.go): leaderSilence, 0.7 of a heartbeat
//     timeout of silence, and only while the leader's port refuses
//     connections;
//   - a leadership transfer, which only the leader starts: it ends its
//     lease before raft sends the target its TimeoutNow (revoke), and the
//     target takes one only from its leader in its current term, never
//     from a leader deposed since (currentTimeoutNow), and acknowledges
//     nothing between that check and raft taking it (timeoutNowFrom).
//
// A new leader needs the vote of a quorum, and in a prompted election
// voters grant it even if they still hear from the old leader, so the
// lease counts a heartbeat only once every voter accepted it: then no
// follower, whichever it is, can campaign before T + leaderSilence. Each
// follower says how long that is with its answer (Node.CommitHeartbeats):
// leaseDuration of its own timing, which leaves a fifth of its heartbeat
// timeout for clocks that run at slightly different rates, so nodes may
// run with different timeouts. The leader reads from its lease until T
// plus the shortest grant (and its own leaseDuration). An accepted
// heartbeat reaches its follower after T, which only adds room. All of it
// runs on each process's monotonic clock; no two clocks are compared, but
// a clock that stops while its machine is suspended breaks the premise
// (Timing.NoReadLease). A node of an earlier version grants no lease.
//
// The voters are those of the leader's latest configuration; while a
// membership change of its own is in flight, the lease does not hold
// (suspend), and a new leader's lease waits for its first commit (which
// commits any change it inherited) as every read does.
//
// Two races are closed by the follower. A prompted campaign decides on
// silence, and a heartbeat can arrive between that decision and raft's
// election: so from just before its last check, a prompted follower
// refuses to acknowledge the old term's messages (refuseAcksUpTo), and the
// leader cannot count a heartbeat the follower accepted after deciding.
// raft's own timer decides the same way, outside the heartbeat's path: so
// a follower grants no lease with a heartbeat that ends a silence of
// grantableSilence or more, when that timer may be about to fire.
//
// When the lease does not hold (a follower is down, slow, new or of an
// earlier version, or a transfer started), reads take the heartbeat round
// as before; its answers renew the lease.

// leaseDuration is the lease a follower with timing t grants: how long
// after sending a heartbeat it accepted its leader may serve reads from the
// lease. It must stay below leaderSilence and the heartbeat timeout, with
// room for clock rates.
func leaseDuration(t Timing) time.Duration { return t.Heartbeat / 2 }

// grantableSilence is how long a follower may have heard nothing from a
// leader and still grant a lease with the heartbeat that ends the silence:
// well short of the heartbeat timeout, after which raft's timer may be
// deciding to campaign.
func grantableSilence(t Timing) time.Duration { return t.Heartbeat * 4 / 5 }

// leaderLease is a leader's record, for its current term, of when it sent
// the latest message each follower accepted. It is safe for concurrent use.
type leaderLease struct {
	mu       sync.Mutex
	term     uint64
	revoked  bool // a leadership transfer began in term
	changing int  // membership changes in flight
	sent     map[raft.ServerID]acceptance
}

// acceptance is a follower's latest acceptance of a heartbeat: when the
// heartbeat left, and the lease the follower granted with its answer.
type acceptance struct {
	sent  time.Time
	grant time.Duration
}

// termLocked moves the record to term, forgetting an earlier one, and
// reports whether term is the one recorded (false for an older term).
// Caller holds l.mu.
func (l *leaderLease) termLocked(term uint64) bool {
	switch {
	case term < l.term:
		return false
	case term > l.term || l.sent == nil:
		l.term, l.revoked, l.sent = term, false, map[raft.ServerID]acceptance{}
	}
	return true
}

// accepted records that follower id accepted a heartbeat of term the
// leader sent at sent, granting a lease of grant with its answer (0: it
// grants none, as a node of an earlier version).
func (l *leaderLease) accepted(id raft.ServerID, term uint64, sent time.Time, grant time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.termLocked(term) && sent.After(l.sent[id].sent) {
		l.sent[id] = acceptance{sent: sent, grant: grant}
	}
}

// revoke ends the lease for the rest of term: a leadership transfer is
// about to let a follower campaign at once.
func (l *leaderLease) revoke(term uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.termLocked(term) {
		l.revoked = true
	}
}

// suspend keeps the lease from holding until the returned function is
// called: a membership change is in flight, and the voters of the
// configuration before it are not all among those whose acceptance holds.
func (l *leaderLease) suspend() (resume func()) {
	l.mu.Lock()
	l.changing++
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		l.changing--
		l.mu.Unlock()
	}
}

// holds reports whether, at now, every one of followers accepted in term a
// heartbeat sent less than d ago, and less than the lease it granted. With
// no followers it never holds: a group of one confirms its leadership
// without a round anyway.
func (l *leaderLease) holds(term uint64, followers []raft.ServerID, now time.Time, d time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if term != l.term || l.revoked || l.changing > 0 || len(followers) == 0 {
		return false
	}
	for _, id := range followers {
		a, ok := l.sent[id]
		if !ok || now.Sub(a.sent) >= min(d, a.grant) {
			return false
		}
	}
	return true
}

// leaseHolds reports whether this replica, leading in term, may serve a
// read from its lease now.
func (s *Shard) leaseHolds(term uint64) bool {
	if s.timing.NoReadLease {
		return false
	}
	future := s.raft.GetConfiguration()
	if future.Error() != nil {
		return false
	}
	var followers []raft.ServerID
	self := false
	for _, srv := range future.Configuration().Servers {
		switch {
		case srv.Suffrage != raft.Voter:
		case srv.ID == raft.ServerID(s.nodeID):
			self = true
		default:
			followers = append(followers, srv.ID)
		}
	}
	return self && s.transport.lease.holds(term, followers, time.Now(), leaseDuration(s.timing))
}

// countRead counts one read round confirmed by the lease or by heartbeats.
func (t *heartbeatTransport) countRead(byLease bool) {
	switch {
	case t.sender == nil:
	case byLease:
		t.sender.leaseReads.Add(1)
	default:
		t.sender.roundReads.Add(1)
	}
}

// errCampaigning answers a message of a term this replica has stopped
// acknowledging because it is about to campaign.
var errCampaigning = errors.New("replica is campaigning: not acknowledging its old leader")

// refuseAcksUpTo makes the replica stop acknowledging messages of terms up
// to term, and returns the previous bound for restoreAcks.
func (t *heartbeatTransport) refuseAcksUpTo(term uint64) (prev uint64) {
	for {
		prev = t.refuseUpTo.Load()
		if prev >= term || t.refuseUpTo.CompareAndSwap(prev, term) {
			return prev
		}
	}
}

// restoreAcks undoes refuseAcksUpTo(term), which returned prev, when the
// campaign did not start. A bound that was already term or more stays.
func (t *heartbeatTransport) restoreAcks(term, prev uint64) {
	if prev < term {
		t.refuseUpTo.CompareAndSwap(term, prev)
	}
}

// guardAck turns raft's acceptance of req into an error when req's term is
// one the replica no longer acknowledges. It runs after raft handled req,
// so a message raft accepted before refuseAcksUpTo is visible to the
// campaign's last check (raft's last contact), and one after it is refused.
func (t *heartbeatTransport) guardAck(req *raft.AppendEntriesRequest, r raft.RPCResponse) raft.RPCResponse {
	resp, ok := r.Response.(*raft.AppendEntriesResponse)
	if r.Error == nil && ok && resp.Success && req != nil && req.Term <= t.refuseUpTo.Load() {
		return raft.RPCResponse{Error: errCampaigning}
	}
	return r
}

// TimeoutNow tells a follower to campaign at once: raft sends it to the
// target of a leadership transfer. The lease of the current term ends
// first, whatever term the transfer was asked in. It goes as
// Node.TimeoutNow, which names the term, so that the target can tell a
// current request from one a deposed leader sent (currentTimeoutNow); to a
// node of an earlier version, which lacks it, as raft's own RPC.
func (t *heartbeatTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	term := uint64(0)
	if src := t.commitSource.Load(); src != nil {
		term = src.raft.CurrentTerm()
	}
	t.lease.revoke(term)
	if t.sender != nil && term > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), heartbeatTimeout)
		defer cancel()
		err := t.sender.clients.call(ctx, string(t.resolve(id, target)), "Node.TimeoutNow",
			TimeoutNowArgs{Shard: t.shard, Term: term, Req: *args}, &TimeoutNowReply{})
		if !lacksMethod(err) {
			return err
		}
	}
	return t.NetworkTransport.TimeoutNow(id, target, args, resp)
}

// TimeoutNowArgs is raft's TimeoutNow for shard's replica, from its leader
// in Term.
type TimeoutNowArgs struct {
	Shard uint32
	Term  uint64
	Req   raft.TimeoutNowRequest
}

// TimeoutNowReply answers a TimeoutNowArgs raft took.
type TimeoutNowReply struct{}

// TimeoutNow hands a leadership transfer's TimeoutNow to the local replica
// if it comes from that replica's leader in its current term.
func (n *nodeService) TimeoutNow(args TimeoutNowArgs, reply *TimeoutNowReply) error {
	s := n.h.Shard(args.Shard)
	if s == nil {
		return fmt.Errorf("shard %d has no replica on %s", args.Shard, n.h.cfg.NodeID)
	}
	return s.transport.timeoutNowFrom(&args.Req, args.Term)
}

// transferHandoff bounds how long a transfer's TimeoutNow waits for raft's
// loop to take it; the sender's call gives up at heartbeatTimeout.
const transferHandoff = 500 * time.Millisecond

// timeoutNowFrom hands req, from the leader of term, to raft if it is
// current (currentTimeoutNow). No message is acknowledged from the check
// until raft took it: otherwise a newer leader could be elected meanwhile,
// count this replica's answer in its lease, and then see it campaign.
func (t *heartbeatTransport) timeoutNowFrom(req *raft.TimeoutNowRequest, term uint64) error {
	prev := t.refuseAcksUpTo(math.MaxUint64)
	if !t.currentTimeoutNow(req, term) {
		t.restoreAcks(math.MaxUint64, prev)
		return errStaleTimeoutNow
	}
	taken, err := t.handTimeoutNow(req, transferHandoff)
	if taken {
		// raft campaigns from term on: its messages stay unacknowledged.
		t.refuseUpTo.CompareAndSwap(math.MaxUint64, max(prev, term))
	} else {
		t.restoreAcks(math.MaxUint64, prev)
	}
	return err
}

// errStaleTimeoutNow refuses a TimeoutNow that is not from this replica's
// current leader in its current term.
var errStaleTimeoutNow = errors.New("timeout-now is not from the current leader in the current term")

// currentTimeoutNow reports whether req comes from the leader this replica
// follows, sent in the replica's current term (term 0: unknown, from a node
// of an earlier version; the sender alone is checked). raft obeys any
// TimeoutNow, and its voters then grant their votes although they know a
// leader: one that a deposed leader sent, delayed or sent after a pause,
// would start an election the current leader's lease does not expect.
func (t *heartbeatTransport) currentTimeoutNow(req *raft.TimeoutNowRequest, term uint64) bool {
	src := t.commitSource.Load()
	if src == nil {
		return false
	}
	_, leader := src.raft.LeaderWithID()
	return leader != "" && string(req.ID) == string(leader) && (term == 0 || term == src.raft.CurrentTerm())
}

// guardRPC refuses a stale TimeoutNow, and routes the answer to an append
// raft receives through guardAck. It reports false for an RPC it answered
// itself, which raft must not see.
func (t *heartbeatTransport) guardRPC(rpc raft.RPC) (raft.RPC, bool) {
	if req, ok := rpc.Command.(*raft.TimeoutNowRequest); ok && !t.currentTimeoutNow(req, 0) {
		rpc.Respond(nil, errStaleTimeoutNow)
		return rpc, false
	}
	req, ok := rpc.Command.(*raft.AppendEntriesRequest)
	if !ok {
		return rpc, true
	}
	out, ch := rpc.RespChan, make(chan raft.RPCResponse, 1)
	rpc.RespChan = ch
	go func() {
		select {
		case r := <-ch:
			out <- t.guardAck(req, r)
		case <-t.stop:
		}
	}()
	return rpc, true
}
