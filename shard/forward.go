package shard

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/fsm"
)

// Writes proposed on a follower: a node that holds a replica of a shard it
// does not lead has already parsed and validated the client's request into
// a command. It sends the encoded command to the leader's host over the
// raft port (Node.Apply), which proposes it and answers the encoded result,
// so the leader parses no HTTP and no JSON for it.

// maxForwardedPerShard bounds the forwarded commands a leader works on at
// once per shard; beyond it they are refused as not enqueued (overloaded)
// without touching raft.
const maxForwardedPerShard = 256

// ApplyArgs is a command for the leader of Shard, fsm-encoded.
type ApplyArgs struct {
	Shard   uint32
	Command []byte
}

// ApplyReply is the encoded fsm.Result, or why there is none. Code names
// the shard error: "" (none), "not_leader", "no_leader", "not_enqueued",
// "outcome_unknown", "shutdown" or "error" (with Err).
type ApplyReply struct {
	Result               []byte
	Code                 string
	LeaderID, LeaderAddr string
	Err                  string
}

// forwardSlots bounds forwarded commands per shard.
type forwardSlots struct {
	mu    sync.Mutex
	inUse map[uint32]int
}

func (f *forwardSlots) take(shard uint32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inUse == nil {
		f.inUse = map[uint32]int{}
	}
	if f.inUse[shard] >= maxForwardedPerShard {
		return false
	}
	f.inUse[shard]++
	return true
}

func (f *forwardSlots) give(shard uint32) {
	f.mu.Lock()
	f.inUse[shard]--
	f.mu.Unlock()
}

// Apply proposes a command forwarded by another node.
func (n *nodeService) Apply(args ApplyArgs, reply *ApplyReply) error {
	s := n.h.Shard(args.Shard)
	if s == nil {
		reply.Code, reply.Err = "error", fmt.Sprintf("shard %d has no replica on %s", args.Shard, n.h.cfg.NodeID)
		return nil
	}
	cmd, err := fsm.DecodeCommand(args.Command)
	if err != nil {
		reply.Code, reply.Err = "error", err.Error()
		return nil
	}
	if !n.forwarded.take(args.Shard) {
		reply.Code = "not_enqueued"
		return nil
	}
	defer n.forwarded.give(args.Shard)
	// The command was decoded to check it; raft gets the bytes it came
	// in (decodeWire copied them out of the connection's buffer). Apply
	// bounds its own wait (raft's enqueue timeout, the shard's close).
	res, err := s.applyForwarded(args.Command)
	var nle *NotLeaderError
	switch {
	case err == nil:
		reply.Result = fsm.EncodeResult(cmd.Op, res)
	case errors.As(err, &nle):
		reply.Code, reply.LeaderID, reply.LeaderAddr = "not_leader", nle.LeaderID, nle.LeaderAddr
	case errors.Is(err, ErrNotEnqueued):
		reply.Code = "not_enqueued"
	case errors.Is(err, ErrShutdown):
		reply.Code = "shutdown"
	case errors.Is(err, ErrNoLeader):
		reply.Code = "no_leader"
	default: // outcome unknown, a deadline, …: the command may have been appended
		reply.Code, reply.Err = "outcome_unknown", err.Error()
	}
	return nil
}

// applyAt sends cmd to the leader named by nle and, if leadership moved
// meanwhile, once more to the leader that one names. An error that leaves
// the command certainly unapplied and a leader known is a *NotLeaderError,
// so the caller may still take the request to the leader another way.
func (h *Host) applyAt(ctx context.Context, s *Shard, cmd *fsm.Command, nle *NotLeaderError) (*fsm.Result, error) {
	data := cmd.Encode()
	for attempt := 0; attempt < 2; attempt++ {
		if nle.LeaderID == "" || nle.LeaderID == h.cfg.NodeID {
			return nil, nle
		}
		addr := string(s.transport.resolve(raft.ServerID(nle.LeaderID), raft.ServerAddress(nle.LeaderAddr)))
		var reply ApplyReply
		sent, err := h.peers.callSent(ctx, addr, "Node.Apply", ApplyArgs{Shard: s.id, Command: data}, &reply)
		switch {
		case err != nil && !sent:
			return nil, nle // never reached the leader: nothing was applied
		case err != nil:
			return nil, fmt.Errorf("%w: forwarding to %s: %v", ErrOutcomeUnknown, nle.LeaderID, err)
		}
		switch reply.Code {
		case "":
			return fsm.DecodeResult(reply.Result)
		case "not_leader":
			nle = &NotLeaderError{Shard: s.id, LeaderID: reply.LeaderID, LeaderAddr: reply.LeaderAddr}
			continue
		case "not_enqueued":
			return nil, ErrNotEnqueued
		case "shutdown":
			return nil, nle // the leader is going away before proposing: not applied
		case "no_leader":
			return nil, ErrNoLeader
		case "outcome_unknown":
			return nil, fmt.Errorf("%w: %s", ErrOutcomeUnknown, reply.Err)
		default:
			return nil, fmt.Errorf("%w: the leader answered %s", ErrNotEnqueued, reply.Err)
		}
	}
	return nil, nle
}

// callSent is call, also reporting whether the request may have reached the
// peer. It is false only when no connection could be had, or the pooled one
// had already failed before anything was written to it (then a fresh one is
// dialed and the call made there). Any failure after the request was handed
// to a working connection counts as sent: another caller may close a shared
// connection under an in-flight call, and the peer may still run what it
// read, so a command must not be sent a second time.
func (c *nodeClients) callSent(ctx context.Context, addr, method string, args, reply any) (sent bool, err error) {
	for try := 0; try < 2; try++ {
		cl, err := c.get(addr)
		if err != nil {
			return false, err
		}
		if cl.conn.broken.Load() {
			c.drop(addr, cl) // died while pooled: nothing of ours was sent on it
			continue
		}
		call := cl.Go(method, args, reply, make(chan *rpc.Call, 1))
		select {
		case <-call.Done:
		case <-ctx.Done():
			c.drop(addr, cl)
			return true, ctx.Err()
		}
		if call.Error != nil {
			if _, serverErr := call.Error.(rpc.ServerError); !serverErr {
				c.drop(addr, cl)
			}
			return true, call.Error
		}
		return true, nil
	}
	return false, rpc.ErrShutdown
}

// applyForwarded proposes a forwarded command, already encoded and checked,
// as Apply would.
func (s *Shard) applyForwarded(data []byte) (*fsm.Result, error) {
	if err := s.canPropose(); err != nil {
		return nil, err
	}
	return s.applyEncoded(data)
}
