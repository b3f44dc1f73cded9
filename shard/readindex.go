package shard

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Linearizable reads on followers (the read-index protocol, as etcd serves
// them): a follower asks its shard's leader for a read index, a commit
// index the leader has proven current by confirming its leadership after
// the request arrived, waits until it has applied that index itself, and
// answers from its own state. The leader does one confirmation round for
// all reads waiting (readLoop) and renders nothing, so reads spread over
// every replica. The request is a node RPC (noderpc.go).

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
// take the read to the leader instead. The reads waiting on this follower
// share one read-index request (followerReads), so a burst of reads costs
// the leader one request per round, not one per read.
func (s *Shard) followerRead(ctx context.Context) error {
	index, err := s.followerReads.wait(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var nle *NotLeaderError
		if errors.As(err, &nle) {
			return nle
		}
		return s.notLeader()
	}
	wctx, cancel := context.WithTimeout(ctx, followerApplyWait)
	err = s.fsm.WaitApplied(wctx, index)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return s.notLeader()
	}
	return nil
}

// leaderReadIndex is one follower round: the read index of the leader this
// replica knows, asked after every read of the round arrived. A failure is
// a *NotLeaderError naming that leader, or the one it named.
//
// The request may take longer than the leader's own bound on the round
// (followerReadIndexSlack), so that a slow leader answers with an error
// rather than the request timing out: a call that times out closes the
// connection to the leader's host, which every shard shares. A replica
// that closes returns at once and leaves the request to finish alone, for
// the same reason.
func (s *Shard) leaderReadIndex() (uint64, error) {
	addr, id := s.raft.LeaderWithID()
	if addr == "" {
		return 0, s.notLeader()
	}
	type answer struct {
		index uint64
		err   error
	}
	done := make(chan answer, 1)
	s.readIndexAsks.Add(1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.timing.Read+followerReadIndexSlack)
		defer cancel()
		index, err := s.readIndexFrom(ctx, string(s.transport.resolve(id, addr)), s.id)
		done <- answer{index, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-s.closed:
		return 0, ErrShutdown
	}
	if a.err != nil {
		var nle *NotLeaderError
		if errors.As(a.err, &nle) {
			return 0, nle
		}
		return 0, &NotLeaderError{Shard: s.id, LeaderID: string(id), LeaderAddr: string(addr)}
	}
	return a.index, nil
}

// followerReadIndexSlack is how much longer a follower waits for a read
// index than the leader takes at most to find one.
const followerReadIndexSlack = time.Second
