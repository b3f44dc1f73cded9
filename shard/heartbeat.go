package shard

import (
	"context"
	"errors"
	"fmt"
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
// waiting for one peer as one node RPC (Node.Heartbeats) at most every
// heartbeatWindow, as CockroachDB and TiKV coalesce theirs. The receiving
// node hands each one to its group's raft heartbeat handler.
//
// A heartbeat that confirms leadership for a linearizable read (raft's
// VerifyLeader) must not wait for the window: while a shard verifies, its
// heartbeats go out at once and flush whatever else is waiting for that
// peer.

// heartbeatWindow is how long a heartbeat may wait for others to the same
// node: a quarter of the heartbeat timeout (250ms by default). Raft's
// heartbeat goroutine sends one per follower every 1/10 to 2/10 of the
// heartbeat timeout and waits for its answer, so the window, not raft's
// timer, sets the pace: each group's heartbeats reach a follower at most
// 0.45 of the timeout apart (window plus raft's timer), well inside the follower's election timeout
// (1 to 2 of them) and the leader lease (2/3 of one, Tuning.Timing). A
// shorter window costs idle CPU: every batch is a node RPC and a wakeup of
// each group's heartbeat goroutine, and with 16 shards a 20ms window made
// the heartbeats about half of an idle cluster's CPU.
func heartbeatWindow(t Timing) time.Duration { return t.Heartbeat / 4 }

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
		rpcs: make(chan raft.RPC), stop: make(chan struct{})}
	go t.relay()
	return t
}

// AppendEntries sends heartbeats through the sender, other appends up to
// maxSharedAppendBytes over the host's connection to the peer, and the rest
// over the group's own connection.
func (t *heartbeatTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	var err error
	switch {
	case t.sender == nil:
		err = t.NetworkTransport.AppendEntries(id, target, args, resp)
	case isHeartbeat(args):
		err = t.sender.send(string(t.resolve(id, target)), t.shard, args, resp, t.urgent.Load() > 0)
	case sharedAppend(args):
		err = t.sendAppend(id, target, args, resp)
	default:
		err = t.NetworkTransport.AppendEntries(id, target, args, resp)
	}
	if err == nil && resp.Term == args.Term {
		t.progress.observe(id, resp.LastLog, time.Now())
	}
	return err
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
	t.NetworkTransport.SetHeartbeatHandler(cb)
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
	reply.Results = make([]HeartbeatResult, len(args.Beats))
	for i := range args.Beats {
		b := &args.Beats[i]
		s := n.h.Shard(b.Shard)
		if s == nil {
			reply.Results[i].Err = fmt.Sprintf("shard %d has no replica on %s", b.Shard, n.h.cfg.NodeID)
			continue
		}
		resp, err := s.transport.deliver(&b.Req)
		if err != nil {
			reply.Results[i].Err = err.Error()
			continue
		}
		reply.Results[i].Resp = *resp
	}
	return nil
}

// heartbeatSender batches heartbeats per peer node.
type heartbeatSender struct {
	clients *nodeClients // heartbeats (and the host's other calls)
	appends *nodeClients // raft appends (appendrpc.go), apart so a burst of them never delays a heartbeat
	window  time.Duration

	batches, beats atomic.Uint64 // sent, for HeartbeatStats
	sharedAppends  atomic.Uint64 // appends sent as node RPCs (appendrpc.go)

	mu     sync.Mutex
	queues map[string]*heartbeatQueue
}

type heartbeatQueue struct {
	addr    string
	pending []*heartbeatCall
	timer   *time.Timer // armed while heartbeats wait for the window
	busy    bool        // a batch is in flight; the next goes when it returns
}

type heartbeatCall struct {
	shard uint32
	req   *raft.AppendEntriesRequest
	resp  *raft.AppendEntriesResponse
	done  chan error
}

func newHeartbeatSender(clients, appends *nodeClients, window time.Duration) *heartbeatSender {
	return &heartbeatSender{clients: clients, appends: appends, window: window, queues: map[string]*heartbeatQueue{}}
}

// send queues one heartbeat for the node at addr and waits for its answer.
func (s *heartbeatSender) send(addr string, shard uint32, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse, urgent bool) error {
	call := &heartbeatCall{shard: shard, req: req, resp: resp, done: make(chan error, 1)}
	s.mu.Lock()
	q := s.queues[addr]
	if q == nil {
		q = &heartbeatQueue{addr: addr}
		s.queues[addr] = q
	}
	q.pending = append(q.pending, call)
	switch {
	case urgent:
		s.startLocked(q)
	case q.timer == nil && !q.busy:
		q.timer = time.AfterFunc(s.window, func() {
			s.mu.Lock()
			q.timer = nil
			s.startLocked(q)
			s.mu.Unlock()
		})
	}
	s.mu.Unlock()
	return <-call.done
}

// flushAll sends every waiting heartbeat now.
func (s *heartbeatSender) flushAll() {
	s.mu.Lock()
	for _, q := range s.queues {
		s.startLocked(q)
	}
	s.mu.Unlock()
}

// startLocked sends q's waiting heartbeats unless a batch is in flight;
// that batch's return sends them. Caller holds s.mu.
func (s *heartbeatSender) startLocked(q *heartbeatQueue) {
	if q.busy || len(q.pending) == 0 {
		return
	}
	if q.timer != nil {
		q.timer.Stop()
		q.timer = nil
	}
	batch := q.pending
	q.pending = nil
	q.busy = true
	go s.flush(q, batch)
}

func (s *heartbeatSender) flush(q *heartbeatQueue, batch []*heartbeatCall) {
	s.batches.Add(1)
	s.beats.Add(uint64(len(batch)))
	args := HeartbeatArgs{Beats: make([]Heartbeat, len(batch))}
	for i, c := range batch {
		args.Beats[i] = Heartbeat{Shard: c.shard, Req: *c.req}
	}
	var reply HeartbeatReply
	ctx, cancel := context.WithTimeout(context.Background(), heartbeatTimeout)
	err := s.clients.call(ctx, q.addr, "Node.Heartbeats", args, &reply)
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
			c.done <- nil
		}
	}
	s.mu.Lock()
	q.busy = false
	s.startLocked(q) // whatever queued meanwhile has waited long enough
	s.mu.Unlock()
}
