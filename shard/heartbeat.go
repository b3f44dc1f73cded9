package shard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Heartbeats between two nodes travel together. hashicorp/raft's leader
// sends every follower of every group a heartbeat each 1/10 of the
// heartbeat timeout, each one its own RPC; with 16 shards a node pair
// exchanged hundreds of tiny RPCs a second while idle, and the cost grew
// with the shard count. Here each group's heartbeat transport hands its
// heartbeats to the node's heartbeatSender, which sends all heartbeats
// waiting for one peer as one node RPC (Node.CommitHeartbeats, or
// Node.Heartbeats to a node of an earlier version) at the next flush,
// as CockroachDB and TiKV coalesce theirs. The receiving node hands each
// one to its group's raft heartbeat handler.
//
// A heartbeat that confirms leadership for a linearizable read (raft's
// VerifyLeader) must not wait for the flush: while a shard verifies, its
// heartbeats go out at once and flush whatever else is waiting for that
// peer.

// heartbeatPeriod is the time between two flushes of the heartbeat
// sender: half the heartbeat timeout (500ms by default). Flushes fall on
// multiples of it in wall-clock time, so every node flushes at the same
// instants, and so do all of one node's peers. Raft's heartbeat goroutine
// waits 1/10 to 2/10 of the timeout after an answer and then hands over
// its next heartbeat, which leaves at the following flush, or a period
// after the group's previous heartbeat to that follower if that comes
// first (an answer that came late): each group's heartbeats reach a
// follower a period apart, or a round trip plus raft's wait when that is
// longer, inside the follower's election timeout (1 to 2 of them) and the
// leader lease (0.8 of one, Tuning.Timing).
//
// The period sets most of an idle node's CPU. Each flush is a node RPC per
// peer and a wakeup of every group's heartbeat goroutine, and in a VM a
// wakeup, not the work it does, is the cost: at 16 shards a 20ms window
// made heartbeats half of an idle cluster's CPU, and half-timeout periods
// aligned across peers and nodes idle at half the CPU of quarter-timeout
// windows started by each peer's first heartbeat (BENCHMARKS.md).
func heartbeatPeriod(t Timing) time.Duration { return t.Heartbeat / 2 }

// heartbeatTimeout bounds one batch's round trip. A peer that does not
// answer (paused, cut off) fails its heartbeats, and raft backs off.
const heartbeatTimeout = time.Second

// isHeartbeat matches what raft's heartbeat goroutine sends, the same test
// raft's NetworkTransport makes on the receiving side.
func isHeartbeat(req *raft.AppendEntriesRequest) bool {
	leader := req.Addr
	if len(leader) == 0 {
		leader = req.Leader
	}
	return req.Term != 0 && leader != nil && req.PrevLogEntry == 0 && req.PrevLogTerm == 0 &&
		len(req.Entries) == 0 && req.LeaderCommitIndex == 0
}

// heartbeatTransport is one replica's raft transport: raft's
// NetworkTransport with heartbeats sent through the node's heartbeatSender.
type heartbeatTransport struct {
	*raft.NetworkTransport
	shard     uint32
	addressOf raft.ServerAddressProvider // may be nil
	sender    *heartbeatSender
	urgent    atomic.Int32 // > 0 while the replica verifies its leadership
	onReceive atomic.Pointer[func(raft.RPC)]
	progress  progressTracker // followers' answers, while this replica leads

	// lease records the followers' acceptances for read leases while this
	// replica leads; refuseUpTo is the highest term whose messages it no
	// longer acknowledges, as a follower about to campaign (lease.go).
	lease      leaderLease
	refuseUpTo atomic.Uint64

	// commits and commitSource let heartbeats carry the commit index
	// (commitbeat.go); commitSource is set once raft runs. pendingCommit
	// is the commit that arrived with a heartbeat, waiting for raft's loop.
	commits       commitTracker
	commitSource  atomic.Pointer[commitSource]
	commitMu      sync.Mutex
	pendingCommit *raft.AppendEntriesRequest
	commitReady   chan struct{}

	beatMu   sync.Mutex
	lastBeat map[raft.ServerID]time.Time // when the last heartbeat to each follower left

	rpcs     chan raft.RPC // what raft consumes (appendrpc.go)
	stop     chan struct{}
	stopOnce sync.Once

	// delivering is held (shared) while a heartbeat is handed to raft, and
	// taken by Close: raft's heartbeat handler runs outside its goroutines,
	// so raft's shutdown does not wait for it, and one that persists a new
	// term after the replica closed its log makes raft panic.
	delivering sync.RWMutex
	closed     bool
}

func newHeartbeatTransport(nt *raft.NetworkTransport, shard uint32, addressOf raft.ServerAddressProvider, sender *heartbeatSender) *heartbeatTransport {
	t := &heartbeatTransport{NetworkTransport: nt, shard: shard, addressOf: addressOf, sender: sender,
		rpcs: make(chan raft.RPC), stop: make(chan struct{}), commitReady: make(chan struct{}, 1),
		lastBeat: map[raft.ServerID]time.Time{}}
	go t.relay()
	go t.deliverCommits()
	return t
}

// AppendEntries sends heartbeats through the sender, other appends up to
// maxSharedAppendBytes over the host's connection to the peer, and the rest
// over the group's own connection.
func (t *heartbeatTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	// Followers apply up to the commit index: no further than what is
	// durable here (leaderlog.go).
	args.LeaderCommitIndex = t.durableCommit(args.LeaderCommitIndex)
	var err error
	switch {
	case t.sender == nil:
		err = t.NetworkTransport.AppendEntries(id, target, args, resp)
	case isHeartbeat(args):
		err = t.sendHeartbeat(id, target, args, resp)
	case sharedAppend(args):
		err = t.sendAppend(id, target, args, resp)
	default:
		err = t.NetworkTransport.AppendEntries(id, target, args, resp)
	}
	if err != nil {
		return err
	}
	if !isHeartbeat(args) {
		t.commits.answered(id, args, resp)
	}
	if resp.Term == args.Term {
		t.progress.observe(id, resp.LastLog, time.Now())
	}
	return nil
}

// sendHeartbeat sends one heartbeat through the sender: no later than a
// period after the previous one to the same follower, with the commit
// index when the follower has not been told it.
func (t *heartbeatTransport) sendHeartbeat(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	term := args.Term
	call := &heartbeatCall{shard: t.shard, req: args, resp: resp, done: make(chan error, 1),
		commit: func() (uint64, uint64) { return t.commitFor(id, term) }}
	t.beatMu.Lock()
	if last, ok := t.lastBeat[id]; ok {
		call.due = last.Add(t.sender.period)
	}
	t.beatMu.Unlock()
	answered, err := t.sender.send(string(t.resolve(id, target)), call, t.urgent.Load() > 0, t.stop)
	if !answered {
		return err
	}
	t.beatMu.Lock()
	t.lastBeat[id] = call.sentAt
	t.beatMu.Unlock()
	if err == nil && resp.Success && resp.Term == term {
		t.lease.accepted(id, term, call.sentAt, call.lease)
		if call.carried > 0 {
			t.commits.told(id, term, call.carried)
		}
	}
	return err
}

// forgetBeats drops the send times of an earlier leadership, so that the
// map holds only the current followers: a replica that leads again after a
// membership change would otherwise keep its former peers' entries for
// good.
func (t *heartbeatTransport) forgetBeats() {
	t.beatMu.Lock()
	clear(t.lastBeat)
	t.beatMu.Unlock()
}

// resolve is the address to dial for peer id: what the address provider
// says now (a node may have moved), else the address in raft's
// configuration, as NetworkTransport does.
func (t *heartbeatTransport) resolve(id raft.ServerID, target raft.ServerAddress) raft.ServerAddress {
	if t.addressOf != nil {
		if addr, err := t.addressOf.ServerAddr(id); err == nil && addr != "" {
			return addr
		}
	}
	return target
}

// SetHeartbeatHandler keeps raft's fast path for heartbeats for the node
// service, and gives it to the NetworkTransport too, for heartbeats sent
// one by one.
func (t *heartbeatTransport) SetHeartbeatHandler(cb func(raft.RPC)) {
	t.onReceive.Store(&cb)
	if cb == nil {
		t.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	t.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		req, _ := rpc.Command.(*raft.AppendEntriesRequest)
		out, ch := rpc.RespChan, make(chan raft.RPCResponse, 1)
		rpc.RespChan = ch
		cb(rpc)
		select {
		case r := <-ch: // raft answers a heartbeat before its handler returns
			out <- t.guardAck(req, r)
		default:
		}
	})
}

// verifying marks the replica as confirming its leadership until the
// returned function is called, and sends the heartbeats waiting now.
func (t *heartbeatTransport) verifying() (done func()) {
	t.urgent.Add(1)
	if t.sender != nil {
		t.sender.flushAll()
	}
	return func() { t.urgent.Add(-1) }
}

// deliver hands a heartbeat that arrived in a batch to raft.
func (t *heartbeatTransport) deliver(req *raft.AppendEntriesRequest) (*raft.AppendEntriesResponse, error) {
	t.delivering.RLock()
	defer t.delivering.RUnlock()
	if t.closed {
		return nil, ErrShutdown
	}
	cb := t.onReceive.Load()
	if cb == nil {
		return nil, errors.New("replica is not running")
	}
	ch := make(chan raft.RPCResponse, 1)
	(*cb)(raft.RPC{Command: req, RespChan: ch})
	select {
	case r := <-ch: // raft answers a heartbeat before its handler returns
		r = t.guardAck(req, r)
		if r.Error != nil {
			return nil, r.Error
		}
		resp, ok := r.Response.(*raft.AppendEntriesResponse)
		if !ok {
			return nil, fmt.Errorf("unexpected heartbeat response %T", r.Response)
		}
		return resp, nil
	default:
		return nil, ErrShutdown // raft drops RPCs once it shuts down
	}
}

// HeartbeatArgs carries heartbeats of several shards to one node.
type HeartbeatArgs struct{ Beats []Heartbeat }

// Heartbeat is one group's heartbeat.
type Heartbeat struct {
	Shard uint32
	Req   raft.AppendEntriesRequest
}

// HeartbeatReply answers each heartbeat of a HeartbeatArgs, in order.
type HeartbeatReply struct{ Results []HeartbeatResult }

// HeartbeatResult is one heartbeat's answer, or why there is none.
type HeartbeatResult struct {
	Resp raft.AppendEntriesResponse
	Err  string
}

// Heartbeats hands each heartbeat to its local replica.
func (n *nodeService) Heartbeats(args HeartbeatArgs, reply *HeartbeatReply) error {
	return n.heartbeats(args, reply, nil)
}

// CommitHeartbeatReply answers Node.CommitHeartbeats: the heartbeats'
// answers and, for each, the read lease this node grants its sender
// (lease.go), 0 for none.
type CommitHeartbeatReply struct {
	HeartbeatReply
	Leases []time.Duration
}

// CommitHeartbeats is Heartbeats from a sender whose heartbeats may carry
// commit indexes; a node of an earlier version refuses it (commitbeat.go).
// The answer also grants the lease this node's timing allows.
func (n *nodeService) CommitHeartbeats(args HeartbeatArgs, reply *CommitHeartbeatReply) error {
	reply.Leases = make([]time.Duration, len(args.Beats))
	return n.heartbeats(args, &reply.HeartbeatReply, reply.Leases)
}

// heartbeats answers each heartbeat through raft's fast path, with any
// commit index taken out, and then hands the commit index of a heartbeat
// raft accepted to raft's loop.
//
// A replica grants a read lease with a heartbeat it accepts (into leases,
// when not nil) only if it had heard from a leader less than
// grantableSilence before: one that had not may be deciding, on raft's own
// timer, to campaign as the heartbeat arrives.
func (n *nodeService) heartbeats(args HeartbeatArgs, reply *HeartbeatReply, leases []time.Duration) error {
	reply.Results = make([]HeartbeatResult, len(args.Beats))
	for i := range args.Beats {
		b := &args.Beats[i]
		s := n.h.Shard(b.Shard)
		if s == nil {
			reply.Results[i].Err = fmt.Sprintf("shard %d has no replica on %s", b.Shard, n.h.cfg.NodeID)
			continue
		}
		notice := splitCommit(&b.Req)
		if !isHeartbeat(&b.Req) { // raft's fast path takes nothing else
			reply.Results[i].Err = "not a heartbeat"
			continue
		}
		quiet := time.Since(s.raft.LastContact())
		resp, err := s.transport.deliver(&b.Req)
		if err != nil {
			reply.Results[i].Err = err.Error()
			continue
		}
		reply.Results[i].Resp = *resp
		if leases != nil && quiet < grantableSilence(n.h.cfg.Timing) {
			leases[i] = leaseDuration(n.h.cfg.Timing)
		}
		if notice != nil && resp.Success && resp.Term == b.Req.Term {
			s.transport.handCommit(notice)
		}
	}
	return nil
}

// heartbeatSender batches heartbeats per peer node.
type heartbeatSender struct {
	clients *nodeClients  // heartbeats (and the host's other calls)
	appends *nodeClients  // raft appends (appendrpc.go), apart so a burst of them never delays a heartbeat
	period  time.Duration // heartbeatPeriod

	batches, beats atomic.Uint64 // sent, for HeartbeatStats
	// Read rounds of this node's leaders confirmed by their read lease
	// and by a round of heartbeats, for ReadConfirmations (lease.go).
	leaseReads, roundReads atomic.Uint64
	sharedAppends          atomic.Uint64 // appends sent as node RPCs (appendrpc.go)

	mu      sync.Mutex
	queues  map[string]*heartbeatQueue
	tick    *time.Timer // armed while heartbeats wait for the next flush
	tickAt  time.Time   // when tick fires
	tickGen uint64      // which tick is current; a replaced one does nothing
}

type heartbeatQueue struct {
	addr    string
	pending []*heartbeatCall
	busy    bool // a batch is in flight
	again   bool // a flush came while busy: the next batch goes when it returns

	// plainUntil is when the peer may next be sent commit indexes, after
	// it refused them. Only the batch in flight touches it.
	plainUntil time.Time
}

type heartbeatCall struct {
	shard uint32
	req   *raft.AppendEntriesRequest
	// commit returns the commit to carry, read when the batch leaves, as
	// the index and its entry's term; 0, 0 for none (commitbeat.go).
	commit func() (index, indexTerm uint64)
	due    time.Time // send no later than this; zero: at the next flush
	resp   *raft.AppendEntriesResponse
	done   chan error

	// Set by flush before done, for every call it answers.
	sentAt  time.Time     // when its batch left
	carried uint64        // the commit index it carried
	lease   time.Duration // the read lease its answer granted, 0 for none
}

func newHeartbeatSender(clients, appends *nodeClients, period time.Duration) *heartbeatSender {
	return &heartbeatSender{clients: clients, appends: appends, period: period, queues: map[string]*heartbeatQueue{}}
}

// send queues call for the node at addr and waits for its answer, or
// until stop closes. An urgent call leaves at once, others at the next
// flush or by call.due. answered reports whether the call was answered
// (with err, nil or not); only then may the caller read what flush set in
// call.
func (s *heartbeatSender) send(addr string, call *heartbeatCall, urgent bool, stop <-chan struct{}) (answered bool, err error) {
	s.mu.Lock()
	q := s.queues[addr]
	if q == nil {
		q = &heartbeatQueue{addr: addr}
		s.queues[addr] = q
	}
	q.pending = append(q.pending, call)
	if urgent {
		s.startLocked(q)
	} else {
		s.armLocked(call.due)
	}
	s.mu.Unlock()
	select {
	case err := <-call.done:
		return true, err
	case <-stop:
		s.mu.Lock() // a replica that closed sends nothing more
		q.pending = slices.DeleteFunc(q.pending, func(c *heartbeatCall) bool { return c == call })
		s.mu.Unlock()
		return false, ErrShutdown
	}
}

// armLocked makes sure a flush comes by the next multiple of the period in
// wall-clock time (heartbeatPeriod), and by due if it is earlier and not
// zero: a heartbeat whose answer came late, and so missed a flush, does
// not wait a whole period more. Caller holds s.mu.
func (s *heartbeatSender) armLocked(due time.Time) {
	now := time.Now()
	at := now.Add(untilNextFlush(now, s.period))
	if !due.IsZero() && due.Before(at) {
		at = due
	}
	if s.tick != nil {
		if !at.Before(s.tickAt) {
			return
		}
		s.tick.Stop()
	}
	s.tickGen++
	gen := s.tickGen
	s.tick, s.tickAt = time.AfterFunc(at.Sub(now), func() { s.flushTick(gen) }), at
}

// untilNextFlush is how long from now to the next multiple of period in
// wall-clock time.
func untilNextFlush(now time.Time, period time.Duration) time.Duration {
	return period - time.Duration(now.UnixNano()%int64(period))
}

// flushTick sends what waits for every peer at a multiple of the period,
// and only what is overdue at a due time, so that one late heartbeat does
// not pull the others off the shared instants; the rest waits for the next
// flush. A tick replaced by an earlier one does nothing.
func (s *heartbeatSender) flushTick(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.tickGen {
		return
	}
	s.tick = nil
	onPeriod := s.tickAt.UnixNano()%int64(s.period) == 0
	now := time.Now()
	for _, q := range s.queues {
		if onPeriod || q.overdue(now) {
			s.startLocked(q)
		}
	}
	for _, q := range s.queues {
		if q.busy {
			continue // its return sends or re-arms for what waits
		}
		for _, c := range q.pending {
			s.armLocked(c.due)
		}
	}
}

// overdue reports whether a heartbeat waiting in q is past its due time.
func (q *heartbeatQueue) overdue(now time.Time) bool {
	for _, c := range q.pending {
		if !c.due.IsZero() && !c.due.After(now) {
			return true
		}
	}
	return false
}

// flushAll sends every waiting heartbeat now.
func (s *heartbeatSender) flushAll() {
	s.mu.Lock()
	for _, q := range s.queues {
		s.startLocked(q)
	}
	s.mu.Unlock()
}

// startLocked sends q's waiting heartbeats, or, while a batch is in
// flight, has its return send them. Caller holds s.mu.
func (s *heartbeatSender) startLocked(q *heartbeatQueue) {
	if q.busy {
		q.again = q.again || len(q.pending) > 0
		return
	}
	if len(q.pending) == 0 {
		return
	}
	batch := q.pending
	q.pending = nil
	q.busy = true
	go s.flush(q, batch)
}

func (s *heartbeatSender) flush(q *heartbeatQueue, batch []*heartbeatCall) {
	s.batches.Add(1)
	s.beats.Add(uint64(len(batch)))
	// Commit indexes go only to a peer that has not refused them lately,
	// in Node.CommitHeartbeats, whose answer also grants a read lease.
	now := time.Now()
	args := HeartbeatArgs{Beats: make([]Heartbeat, len(batch))}
	offer := now.After(q.plainUntil)
	for i, c := range batch {
		c.sentAt = now
		args.Beats[i] = Heartbeat{Shard: c.shard, Req: *c.req}
		if !offer || c.commit == nil {
			continue
		}
		if index, indexTerm := c.commit(); index > 0 {
			withCommit(&args.Beats[i].Req, index, indexTerm)
			c.carried = index
		}
	}
	var reply CommitHeartbeatReply
	ctx, cancel := context.WithTimeout(context.Background(), heartbeatTimeout)
	var err error
	if offer {
		err = s.clients.call(ctx, q.addr, "Node.CommitHeartbeats", args, &reply)
		if lacksMethod(err) {
			q.plainUntil = time.Now().Add(plainHeartbeatsFor)
			offer = false
			for i, c := range batch {
				args.Beats[i].Req = *c.req
				c.carried = 0
			}
		}
	}
	if !offer {
		reply.Leases = nil
		err = s.clients.call(ctx, q.addr, "Node.Heartbeats", args, &reply.HeartbeatReply)
	}
	cancel()
	if err == nil && len(reply.Results) != len(batch) {
		err = fmt.Errorf("heartbeats: %d answers to %d heartbeats", len(reply.Results), len(batch))
	}
	for i, c := range batch {
		switch {
		case err != nil:
			c.done <- err
		case reply.Results[i].Err != "":
			c.done <- errors.New(reply.Results[i].Err)
		default:
			*c.resp = reply.Results[i].Resp
			if i < len(reply.Leases) {
				c.lease = reply.Leases[i]
			}
			c.done <- nil
		}
	}
	s.mu.Lock()
	q.busy = false
	if q.again || q.overdue(time.Now()) { // what queued meanwhile has waited through a flush
		q.again = false
		s.startLocked(q)
	} else {
		for _, c := range q.pending { // a tick skipped q while it was busy
			s.armLocked(c.due)
		}
	}
	s.mu.Unlock()
}
