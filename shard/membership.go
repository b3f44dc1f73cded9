package shard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/fsm"
)

// Membership changes, as the cluster's reconciler makes them on a shard's
// leader: a new replica joins as a learner (a nonvoter that receives the
// log but does not count towards quorum), is promoted to voter once it has
// caught up, and a replica no longer placed is removed. Every change takes
// the index of the configuration it was computed from (prevIndex, from
// Configuration), so a change computed from a configuration that has since
// changed fails instead of stacking on top of it.
//
// A change returns the log index of the new configuration once raft has
// committed it. It fails with *NotLeaderError on a replica that does not
// lead, with ErrNotEnqueued while leadership is being transferred, and with
// ErrShutdown once the replica closes; other errors come from raft.

// membershipTimeout bounds how long a change waits to be enqueued.
const membershipTimeout = 5 * time.Second

// Configuration returns the latest raft configuration this replica knows
// and its log index, meant as the prevIndex of the next membership change.
// hashicorp/raft v1.8.0 leaves that index at 0 (GetConfiguration in its
// api.go does not fill it in), and a change with prevIndex 0 is
// unconditional. The index a change returns is exact.
func (s *Shard) Configuration() (raft.Configuration, uint64, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, 0, err
	}
	return f.Configuration(), f.Index(), nil
}

// CommittedConfiguration returns, on the leader, the latest configuration
// once it is known to be committed: it reads the configuration, then
// commits a no-op command after it, which commits every entry before it.
// (Configuration cannot tell: the index that would say whether the commit
// index has passed the configuration is always 0, see above. A raft
// barrier would do too, but barriers never reach the FSM, whose applied
// index linearizable reads wait on.) Deleting a removed replica's data
// must wait for this, since an uncommitted removal can be lost with its
// leader and the replica would still be a voter. It blocks for one commit
// round; it fails with *NotLeaderError on a replica that does not lead.
func (s *Shard) CommittedConfiguration() (raft.Configuration, error) {
	cfg, _, err := s.Configuration()
	if err != nil {
		return raft.Configuration{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), membershipTimeout)
	defer cancel()
	if _, err := s.Apply(ctx, &fsm.Command{Op: fsm.OpNoop}); err != nil {
		return raft.Configuration{}, err
	}
	return cfg, nil
}

// InConfiguration reports whether this node is a member of the latest
// configuration this replica knows.
func (s *Shard) InConfiguration() bool {
	cfg, _, err := s.Configuration()
	if err != nil {
		return true // unknown: assume membership, the safe answer for deletion
	}
	for _, srv := range cfg.Servers {
		if string(srv.ID) == s.nodeID {
			return true
		}
	}
	return false
}

// AddLearner adds node id, reachable for raft at addr, as a nonvoter.
func (s *Shard) AddLearner(id, addr string, prevIndex uint64) (uint64, error) {
	return s.changeMembership(func() raft.IndexFuture {
		return s.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), prevIndex, membershipTimeout)
	})
}

// Promote makes node id, a learner reachable at addr, a voter.
func (s *Shard) Promote(id, addr string, prevIndex uint64) (uint64, error) {
	return s.changeMembership(func() raft.IndexFuture {
		return s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), prevIndex, membershipTimeout)
	})
}

// RemoveReplica removes node id, voter or learner, from the group.
func (s *Shard) RemoveReplica(id string, prevIndex uint64) (uint64, error) {
	return s.changeMembership(func() raft.IndexFuture {
		return s.raft.RemoveServer(raft.ServerID(id), prevIndex, membershipTimeout)
	})
}

// changeMembership makes the change propose starts and waits for it. Until
// it is committed, voters of the configuration before it may still elect
// a leader, so the read lease is suspended meanwhile (lease.go).
func (s *Shard) changeMembership(propose func() raft.IndexFuture) (uint64, error) {
	defer s.transport.lease.suspend()()
	f := propose()
	err := s.await(f)
	switch {
	case err == nil:
		return f.Index(), nil
	case errors.Is(err, raft.ErrNotLeader):
		return 0, s.notLeader()
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return 0, fmt.Errorf("%w: %v", ErrNotEnqueued, err)
	default:
		return 0, fmt.Errorf("shard %d: %w", s.id, err)
	}
}

// LastIndex is the index of the last entry in this replica's log.
func (s *Shard) LastIndex() uint64 { return s.raft.LastIndex() }

// CommitIndex is the highest log index this replica knows to be committed.
func (s *Shard) CommitIndex() uint64 { return s.raft.CommitIndex() }
