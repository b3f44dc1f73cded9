package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/shard"
)

// Replica lifecycle on the receiving side. A node never creates a
// replica because a raft connection arrived for it: the shard's leader asks
// first (CreateReplica), then adds it. After removing it, the leader asks the
// node to drop it (DropReplica), and the node deletes the data only once the
// leader's committed configuration no longer lists it. A periodic backstop
// does the same for requests that got lost.

// ErrStillMember is returned by DropReplica while the committed
// configuration still lists this node.
var ErrStillMember = errors.New("the shard's committed configuration still lists this node")

// ErrNotFormed is returned while the node does not belong to a cluster yet.
var ErrNotFormed = errors.New("node has not joined a cluster yet")

func (n *Node) isFormed() bool {
	select {
	case <-n.formedCh:
		return true
	default:
		return false
	}
}

// CreateReplica opens an empty replica of shard s for its leader to add. It
// is idempotent. It refuses with ErrBusy while the node is already catching
// up as many new replicas as --max-moves allows, which bounds how many
// snapshots stream into one node at once.
func (n *Node) CreateReplica(s uint32) error {
	if !n.isFormed() {
		return ErrNotFormed
	}
	if int(s) >= n.cfg.ShardCount {
		return fmt.Errorf("shard %d out of range", s)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.host.Shard(s) != nil {
		return nil
	}
	if len(n.incoming) >= n.cfg.maxMoves() {
		return ErrBusy
	}
	if _, err := n.host.OpenShard(s); err != nil {
		return err
	}
	n.incoming[s] = time.Now()
	n.logger.Info("created empty replica for the shard leader to add", "shard", s)
	n.kickMeta()
	return nil
}

// ReplicaStatus reports this node's replica of shard s.
func (n *Node) ReplicaStatus(s uint32) (ReplicaStatus, error) {
	r := n.host.Shard(s)
	if r == nil {
		return ReplicaStatus{}, &shard.NotHostedError{Shard: s}
	}
	st := r.Status()
	return ReplicaStatus{Shard: s, LastIndex: st.LastIndex, AppliedIndex: st.AppliedIndex, InConfig: r.InConfiguration()}, nil
}

// Membership reports, on the shard's leader, the group's latest
// configuration and whether it is committed.
func (n *Node) Membership(s uint32) (Membership, error) {
	r := n.host.Shard(s)
	if r == nil {
		return Membership{}, &shard.NotHostedError{Shard: s}
	}
	if !r.IsLeader() {
		id, addr := r.Leader()
		return Membership{}, &shard.NotLeaderError{Shard: s, LeaderID: id, LeaderAddr: addr}
	}
	cfg, idx, err := r.Configuration()
	if err != nil {
		return Membership{}, err
	}
	// The configuration's own index is not known (shard.Configuration), so
	// only a barrier after it can tell that it is committed.
	committed := false
	if c, err := r.CommittedConfiguration(); err == nil && sameServers(c, cfg) {
		committed = true
	}
	m := Membership{Shard: s, Leader: n.cfg.NodeID, ConfigIndex: idx,
		Committed: committed, Voters: []string{}, Nonvoters: []string{}}
	for _, srv := range cfg.Servers {
		if srv.Suffrage == raft.Voter {
			m.Voters = append(m.Voters, string(srv.ID))
		} else {
			m.Nonvoters = append(m.Nonvoters, string(srv.ID))
		}
	}
	return m, nil
}

// sameServers reports whether a and b list the same servers, in order.
func sameServers(a, b raft.Configuration) bool {
	if len(a.Servers) != len(b.Servers) {
		return false
	}
	for i := range a.Servers {
		if a.Servers[i] != b.Servers[i] {
			return false
		}
	}
	return true
}

// leaderMembership asks the current leader of shard s for its membership.
func (n *Node) leaderMembership(ctx context.Context, s uint32) (Membership, error) {
	id, addr, local := n.Leader(s)
	if local {
		return n.Membership(s)
	}
	if id == "" {
		return Membership{}, shard.ErrNoLeader
	}
	return n.peers.membership(ctx, addr, s)
}

// DropReplica shuts down this node's replica of shard s and deletes its data,
// once the leader's committed configuration no longer lists this node.
func (n *Node) DropReplica(ctx context.Context, s uint32) error {
	r := n.host.Shard(s)
	if r == nil {
		return nil
	}
	if r.IsLeader() {
		return fmt.Errorf("shard %d: this node leads it; transfer leadership before dropping: %w", s, ErrStillMember)
	}
	m, err := n.leaderMembership(ctx, s)
	if err != nil {
		return err
	}
	if !m.Committed || m.Lists(n.cfg.NodeID) {
		return ErrStillMember
	}
	if err := n.host.CloseShard(s, true); err != nil {
		return err
	}
	n.mu.Lock()
	delete(n.incoming, s)
	n.mu.Unlock()
	n.kickMeta()
	n.logger.Info("dropped replica and deleted its data", "shard", s, "leader", m.Leader, "config_index", m.ConfigIndex)
	return nil
}

// replicaBackstopLoop drops replicas whose drop request was lost: ones that
// are no longer in their group's committed configuration, are not placed
// here, and were not just created for a leader to add.
func (n *Node) replicaBackstopLoop() { n.everyRound(n.cfg.backstopInterval, n.backstopRound) }

func (n *Node) backstopRound() {
	n.settleIncoming()
	for _, r := range n.host.Shards() {
		if r.IsLeader() || r.InConfiguration() && time.Since(r.LastContact()) < 30*time.Second {
			continue
		}
		n.mu.Lock()
		created, pending := n.incoming[r.ID()]
		n.mu.Unlock()
		if pending && time.Since(created) < pendingReplicaGrace {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := n.DropReplica(ctx, r.ID())
		cancel()
		if err != nil && !errors.Is(err, ErrStillMember) {
			n.logger.Debug("replica backstop", "shard", r.ID(), "err", err)
		}
	}
}

// pendingReplicaGrace is how long a replica created for a leader to add is
// kept out of the backstop's reach and counted against --max-moves. A
// leader that gave up on the move (it lost leadership, or placement
// changed) never adds it; after this the slot is freed and the empty replica
// dropped.
const pendingReplicaGrace = 20 * time.Second

// settleIncoming forgets replicas that have become voters, and ones a leader
// never added, freeing their slot in the incoming-move limit.
func (n *Node) settleIncoming() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for s, created := range n.incoming {
		r := n.host.Shard(s)
		if r == nil || time.Since(created) > pendingReplicaGrace && !r.InConfiguration() {
			delete(n.incoming, s)
			continue
		}
		cfg, _, err := r.Configuration()
		if err != nil {
			continue
		}
		for _, srv := range cfg.Servers {
			if string(srv.ID) == n.cfg.NodeID && srv.Suffrage == raft.Voter {
				delete(n.incoming, s)
				n.logger.Info("new replica is a voter", "shard", s, "after", time.Since(created).Round(time.Millisecond))
			}
		}
	}
}
