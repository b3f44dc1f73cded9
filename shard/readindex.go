package shard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/rpc"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Linearizable reads on followers (the read-index protocol, as etcd serves
// them): a follower asks its shard's leader for a read index, a commit
// index the leader has proven current by confirming its leadership after
// the request arrived, waits until it has applied that index itself, and
// answers from its own state. The leader does one confirmation round for
// all reads waiting (readLoop) and renders nothing, so reads spread over
// every replica.
//
// The request travels over the raft port: a connection whose preamble names
// nodeServiceID instead of a shard carries net/rpc calls between hosts.

// nodeServiceID is the preamble "shard" of node-to-node RPC connections;
// real shard ids are far smaller.
const nodeServiceID = math.MaxUint32

// followerApplyWait bounds how long a follower waits to apply a read index.
// Followers learn the commit index only with the leader's next append
// (immediately under load, up to raft's CommitTimeout when idle); past this
// the leader, which has applied it, answers sooner.
const followerApplyWait = 3 * time.Millisecond

// ReadIndexArgs asks the leader of Shard for a read index.
type ReadIndexArgs struct{ Shard uint32 }

// ReadIndexReply is the read index, or why there is none.
type ReadIndexReply struct {
	Index uint64
	// NotLeader is set when the node asked does not lead the shard; it
	// then names the leader it knows, if any.
	NotLeader            bool
	LeaderID, LeaderAddr string
	Err                  string
}

// nodeService answers other hosts' RPCs. Exported methods are the RPCs.
type nodeService struct {
	h         *Host
	forwarded forwardSlots
}

// ReadIndex serves a follower's read-index request for a shard led here.
func (n *nodeService) ReadIndex(args ReadIndexArgs, reply *ReadIndexReply) error {
	s := n.h.Shard(args.Shard)
	if s == nil {
		reply.Err = fmt.Sprintf("shard %d has no replica on %s", args.Shard, n.h.cfg.NodeID)
		return nil
	}
	if !s.IsLeader() {
		reply.NotLeader = true
		reply.LeaderID, reply.LeaderAddr = s.Leader()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timing.Read)
	defer cancel()
	index, err := s.reads.wait(ctx)
	var nle *NotLeaderError
	switch {
	case errors.As(err, &nle):
		reply.NotLeader, reply.LeaderID, reply.LeaderAddr = true, nle.LeaderID, nle.LeaderAddr
	case err != nil:
		reply.Err = err.Error()
	default:
		reply.Index = index
	}
	return nil
}

// serveNodeRPC accepts node-to-node connections until the layer closes.
// Closing the layer closes the connections it accepted, which ends their
// ServeConn loops.
func serveNodeRPC(layer *StreamLayer, srv *rpc.Server, logger *slog.Logger) {
	for {
		conn, err := layer.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				logger.Warn("node rpc accept failed", "err", err)
			}
			return
		}
		go srv.ServeConn(&nodeConn{Conn: conn})
	}
}

// nodeRPCWriteTimeout bounds one write on a node RPC connection. net/rpc
// writes without a deadline, under a lock every call on the connection
// shares: a peer that stops reading (paused, cut off without a reset)
// would otherwise block every later call to it, heartbeats included,
// forever. A write that times out breaks the connection instead, failing
// the calls on it, and the next call dials afresh.
const nodeRPCWriteTimeout = 2 * time.Second

// nodeConn is a node RPC connection: every write has its own deadline, and
// it remembers when a read or write failed, so a caller can tell a pooled
// connection that was already dead before it sent anything.
type nodeConn struct {
	net.Conn
	broken atomic.Bool
}

func (c *nodeConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(nodeRPCWriteTimeout)); err != nil {
		c.broken.Store(true)
		return 0, err
	}
	n, err := c.Conn.Write(b)
	if err != nil {
		c.broken.Store(true)
	}
	return n, err
}

func (c *nodeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.broken.Store(true)
	}
	return n, err
}

// nodeClient is the RPC client on one connection to a peer.
type nodeClient struct {
	*rpc.Client
	conn *nodeConn
}

// nodeClients keeps one multiplexed RPC connection per peer host.
type nodeClients struct {
	mux     *Mux
	timeout time.Duration

	mu      sync.Mutex
	clients map[string]*nodeClient
	closed  bool
}

func newNodeClients(mux *Mux) *nodeClients {
	return &nodeClients{mux: mux, timeout: time.Second, clients: map[string]*nodeClient{}}
}

// get returns the client for addr, dialing one if there is none. The dial
// happens outside the lock: a peer that does not answer must not hold up
// calls to the others.
func (c *nodeClients) get(addr string) (*nodeClient, error) {
	c.mu.Lock()
	cl, closed := c.clients[addr], c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrShutdown
	}
	if cl != nil {
		return cl, nil
	}
	raw, err := c.mux.dial(raft.ServerAddress(addr), nodeServiceID, c.timeout)
	if err != nil {
		return nil, err
	}
	conn := &nodeConn{Conn: raw}
	cl = &nodeClient{Client: rpc.NewClient(conn), conn: conn}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cl.Close()
		return nil, ErrShutdown
	}
	if other := c.clients[addr]; other != nil {
		cl.Close() // another call dialed first
		return other, nil
	}
	c.clients[addr] = cl
	return cl, nil
}

// drop forgets a broken client so the next call dials afresh.
func (c *nodeClients) drop(addr string, cl *nodeClient) {
	c.mu.Lock()
	if c.clients[addr] == cl {
		delete(c.clients, addr)
	}
	c.mu.Unlock()
	cl.Close()
}

func (c *nodeClients) close() {
	c.mu.Lock()
	c.closed = true
	clients := c.clients
	c.clients = map[string]*nodeClient{}
	c.mu.Unlock()
	for _, cl := range clients {
		cl.Close()
	}
}

// call makes one RPC to the host at addr. A call that fails or outlives ctx
// drops the connection, so the next call dials afresh (a reply that comes
// later is discarded by net/rpc). Only for calls that are safe to repeat.
func (c *nodeClients) call(ctx context.Context, addr, method string, args, reply any) error {
	_, err := c.callSent(ctx, addr, method, args, reply)
	return err
}

// readIndex asks the host at addr for shard's read index.
func (c *nodeClients) readIndex(ctx context.Context, addr string, shard uint32) (uint64, error) {
	var reply ReadIndexReply
	if err := c.call(ctx, addr, "Node.ReadIndex", ReadIndexArgs{Shard: shard}, &reply); err != nil {
		return 0, err
	}
	switch {
	case reply.NotLeader:
		return 0, &NotLeaderError{Shard: shard, LeaderID: reply.LeaderID, LeaderAddr: reply.LeaderAddr}
	case reply.Err != "":
		return 0, errors.New(reply.Err)
	}
	return reply.Index, nil
}

// followerRead serves a linearizable read on a follower. Any failure is a
// *NotLeaderError naming the leader this replica knows, so the caller can
// take the read to the leader instead.
func (s *Shard) followerRead(ctx context.Context) error {
	addr, id := s.raft.LeaderWithID()
	if addr == "" {
		return s.notLeader()
	}
	rctx, cancel := context.WithTimeout(ctx, s.timing.Read)
	index, err := s.readIndexFrom(rctx, string(s.transport.resolve(id, addr)), s.id)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var nle *NotLeaderError
		if errors.As(err, &nle) {
			return nle
		}
		return &NotLeaderError{Shard: s.id, LeaderID: string(id), LeaderAddr: string(addr)}
	}
	wctx, cancel := context.WithTimeout(ctx, followerApplyWait)
	err = s.fsm.WaitApplied(wctx, index)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &NotLeaderError{Shard: s.id, LeaderID: string(id), LeaderAddr: string(addr)}
	}
	return nil
}
