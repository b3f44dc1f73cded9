package shard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Raft appends between two nodes share one connection. hashicorp/raft's
// NetworkTransport keeps connections per group, so with 16 shards a write
// load made every group send its own AppendEntries to each follower, each
// a system call on both sides and a wakeup of its own. Here a replica
// sends its appends as node RPCs (Node.AppendEntries) on a connection its
// host keeps to the peer's host for appends alone (heartbeats and other
// calls have their own, so they never queue behind appends), where the
// appends of every group waiting at the same moment leave in one write
// (nodeConn). The receiving host hands each one to its replica's raft, as
// NetworkTransport would.
//
// Large appends (a follower catching up) still go over the group's own
// connection, so they do not hold up the other groups' small ones; so do
// votes, snapshots and leadership transfers.

// maxSharedAppendBytes is the largest append, in entry bytes, sent on the
// shared connection.
const maxSharedAppendBytes = 64 << 10

// appendTimeout bounds one append's round trip, as the NetworkTransport's
// Timeout does for the appends it sends.
const appendTimeout = 5 * time.Second

// AppendArgs is one replica's AppendEntries for the peer's replica of Shard.
type AppendArgs struct {
	Shard uint32
	Req   raft.AppendEntriesRequest
}

// sharedAppend reports whether req goes over the host's shared connection.
func sharedAppend(req *raft.AppendEntriesRequest) bool {
	size := 0
	for _, e := range req.Entries {
		size += len(e.Data) + len(e.Extensions)
		if size > maxSharedAppendBytes {
			return false
		}
	}
	return true
}

// sendAppend sends req to the replica of t's shard at addr over the
// host's shared connection. (Nodes of a version without Node.AppendEntries
// answer it with an error: a cluster is upgraded with a full restart.)
func (t *heartbeatTransport) sendAppend(id raft.ServerID, target raft.ServerAddress, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	t.sender.sharedAppends.Add(1)
	var reply AppendReply
	err := t.sender.appends.call(ctx, string(t.resolve(id, target)), "Node.AppendEntries", AppendArgs{Shard: t.shard, Req: *req}, &reply)
	if err == nil {
		*resp = reply.Resp
	}
	return err
}

// AppendEntries hands one append to its local replica's raft and waits for
// the answer.
func (n *nodeService) AppendEntries(args AppendArgs, reply *AppendReply) error {
	s := n.h.Shard(args.Shard)
	if s == nil {
		return fmt.Errorf("shard %d has no replica on %s", args.Shard, n.h.cfg.NodeID)
	}
	resp, err := s.transport.dispatch(&args.Req, appendTimeout)
	if err != nil {
		return err
	}
	reply.Resp = *resp
	return nil
}

// dispatch hands req to raft through the transport's consumer channel, as
// NetworkTransport does for what arrives on the group's own connections,
// and waits for raft's answer.
func (t *heartbeatTransport) dispatch(req *raft.AppendEntriesRequest, timeout time.Duration) (*raft.AppendEntriesResponse, error) {
	ch := make(chan raft.RPCResponse, 1)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case t.rpcs <- raft.RPC{Command: req, RespChan: ch}:
	case <-t.stop:
		return nil, ErrShutdown
	case <-timer.C:
		return nil, errors.New("append: replica busy")
	}
	select {
	case r := <-ch:
		r = t.guardAck(req, r)
		if r.Error != nil {
			return nil, r.Error
		}
		resp, ok := r.Response.(*raft.AppendEntriesResponse)
		if !ok {
			return nil, fmt.Errorf("unexpected append response %T", r.Response)
		}
		return resp, nil
	case <-t.stop:
		return nil, ErrShutdown
	case <-timer.C:
		return nil, errors.New("append: no answer from raft")
	}
}

// Consumer is where raft reads the RPCs for its replica: those arriving on
// the group's own connections and those handed over by the node service.
func (t *heartbeatTransport) Consumer() <-chan raft.RPC { return t.rpcs }

// relay moves the RPCs the NetworkTransport receives to the consumer
// channel until the transport closes.
func (t *heartbeatTransport) relay() {
	in := t.NetworkTransport.Consumer()
	for {
		select {
		case rpc := <-in:
			rpc, ok := t.guardRPC(rpc)
			if !ok {
				continue
			}
			select {
			case t.rpcs <- rpc:
			case <-t.stop:
				return
			}
		case <-t.stop:
			return
		}
	}
}

// Close stops relaying, waits for heartbeats being handed to raft, refuses
// later ones, and closes the NetworkTransport.
func (t *heartbeatTransport) Close() error {
	t.delivering.Lock()
	t.closed = true
	t.delivering.Unlock()
	t.stopOnce.Do(func() { close(t.stop) })
	return t.NetworkTransport.Close()
}
