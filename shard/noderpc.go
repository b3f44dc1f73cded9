package shard

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/rpc"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Node RPC: hosts call each other over the raft port, on a connection
// whose preamble names nodeServiceID instead of a shard, with net/rpc's
// calls in the binary codec of rpccodec.go: net/rpc's client, and a server
// of our own with net/rpc's behaviour (nodeserver.go). It carries raft
// appends (appendrpc.go), read indexes (readindex.go), writes forwarded from followers
// (forward.go) and batched heartbeats (heartbeat.go). Mutual TLS, when the
// mux has it, covers these connections like raft's.

// nodeServiceID is the preamble "shard" of node-to-node RPC connections;
// real shard ids are far smaller. (MaxUint32 named the same service with
// gob's encoding: a node of that version refuses this one's calls, and
// the other way round, instead of misreading them.)
const nodeServiceID = math.MaxUint32 - 1

// nodeService answers other hosts' RPCs. Exported methods are the RPCs,
// with net/rpc's signature; methods lists them for nodeServer.
type nodeService struct {
	h         *Host
	forwarded forwardSlots
}

func (n *nodeService) methods() map[string]nodeMethod {
	return map[string]nodeMethod{
		"Node.AppendEntries":    method(n.AppendEntries),
		"Node.Apply":            method(n.Apply),
		"Node.Heartbeats":       method(n.Heartbeats),
		"Node.CommitHeartbeats": method(n.CommitHeartbeats),
		"Node.ReadIndex":        method(n.ReadIndex),
		"Node.TimeoutNow":       method(n.TimeoutNow),
	}
}

// serveNodeRPC accepts node-to-node connections until the layer closes.
// Closing the layer closes the connections it accepted, which ends their
// ServeConn loops.
func serveNodeRPC(layer *StreamLayer, serve func(rpc.ServerCodec), onPeerClose func(), logger *slog.Logger) {
	for {
		conn, err := layer.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				logger.Warn("node rpc accept failed", "err", err)
			}
			return
		}
		nc := newNodeConn(conn)
		nc.onPeerClose = onPeerClose
		go serve(newWireCodec(nc))
	}
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
	// onPeerClose is given to every connection dialed (nodeConn.onPeerClose).
	onPeerClose func()

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
	conn := newNodeConn(raw)
	conn.onPeerClose = c.onPeerClose
	cl = &nodeClient{Client: rpc.NewClientWithCodec(newWireCodec(conn)), conn: conn}
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
