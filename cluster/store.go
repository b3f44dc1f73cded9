package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/raftlog"
	"github.com/sessiond/sessiond/shard"
)

// The methods below are what the HTTP layer needs from a node: local shard
// operations (delegated to the Host) and routing to shard leaders.

// NodeID is this node's id.
func (n *Node) NodeID() string { return n.cfg.NodeID }

// ShardCount is the cluster's fixed shard count.
func (n *Node) ShardCount() int { return n.cfg.ShardCount }

// ShardFor maps a session id to its shard.
func (n *Node) ShardFor(sessionID string) uint32 { return n.host.ShardFor(sessionID) }

// Apply proposes cmd on the local replica of shard s. While a node holding
// a replica of s is over its data quota, commands that add data fail with
// *NoSpaceError.
func (n *Node) Apply(ctx context.Context, s uint32, cmd *fsm.Command) (*fsm.Result, error) {
	if err := n.checkQuota(s, cmd); err != nil {
		return nil, err
	}
	return n.host.Apply(ctx, s, cmd)
}

// Read waits for consistency level c on the local replica of shard s.
func (n *Node) Read(ctx context.Context, s uint32, c shard.Consistency) (*fsm.FSM, error) {
	return n.host.Read(ctx, s, c)
}

// ShardStatus reports the local replica of shard s.
func (n *Node) ShardStatus(s uint32) (shard.Status, bool) { return n.host.ShardStatus(s) }

// RaftLogStats reports the node's shared raft log counters; false when
// the node runs per-shard logs.
func (n *Node) RaftLogStats() (raftlog.Stats, bool) {
	if l := n.host.SharedLog(); l != nil {
		return l.Stats(), true
	}
	return raftlog.Stats{}, false
}

// RaftPortStats counts the raft port's work since the node started. It is
// a plain value, a copy of counters that go on moving.
type RaftPortStats struct {
	// Rejected counts connections closed before they reached raft: a
	// failed TLS handshake, a missing client certificate, or a wrong
	// preamble, cluster or shard.
	Rejected uint64
	// HeartbeatBatches counts the node RPCs that carried this node's
	// replicas' heartbeats to other nodes, and Heartbeats the heartbeats.
	HeartbeatBatches, Heartbeats uint64
	// LeaseReads and RoundReads count the linearizable read rounds of this
	// node's leaders confirmed by their read lease and by a round of
	// heartbeats.
	LeaseReads, RoundReads uint64
}

// RaftPortStats reports the raft port's counters. It does not block.
func (n *Node) RaftPortStats() RaftPortStats {
	st := RaftPortStats{Rejected: n.host.Mux().Rejected()}
	st.HeartbeatBatches, st.Heartbeats = n.host.HeartbeatStats()
	st.LeaseReads, st.RoundReads = n.host.ReadConfirmations()
	return st
}

// LocalReplicas returns the replicas this node holds, ordered by shard id,
// for reporting on them and for the alarm scheduler. A replica in the list
// may be closed at any time (the node drops it, or the node stops): Apply
// then fails with shard.ErrShutdown. It does not block.
func (n *Node) LocalReplicas() []*shard.Shard { return n.host.Shards() }

// HasReplica reports whether this node holds a replica of shard s.
func (n *Node) HasReplica(s uint32) bool { return n.host.Shard(s) != nil }

// Ready reports whether the node belongs to a cluster and every replica it
// holds knows its leader.
func (n *Node) Ready() bool {
	select {
	case <-n.stop:
		return false
	default:
	}
	if !n.isFormed() {
		return false
	}
	for _, s := range n.host.Shards() {
		if id, _ := s.Leader(); id == "" {
			return false
		}
	}
	return true
}

// Leader says who leads shard s: this node (local), another node with its
// HTTP address, or nobody known (id ""). A local replica's raft view wins;
// without one, or while it knows no leader (a new learner that has not heard
// from its leader yet), the leadership bits other nodes gossip are the hint.
// A stale hint costs one forward, and the node it reaches forwards at most
// once more.
func (n *Node) Leader(s uint32) (id, httpAddr string, local bool) {
	if r := n.host.Shard(s); r != nil {
		if r.IsLeader() {
			return n.cfg.NodeID, n.cfg.HTTPAdvertise, true
		}
		if lid, _ := r.Leader(); lid != "" {
			// Raft hears from its leader; gossip may still call it dead
			// just after a partition heals.
			if m, ok := n.members.get(lid); ok {
				return lid, m.HTTPAddr, false
			}
		}
	}
	for _, m := range n.members.list() {
		if m.live() && m.NodeID != n.cfg.NodeID && m.LeadsShard(s) {
			return m.NodeID, m.HTTPAddr, false
		}
	}
	return "", "", false
}

// MemberStatus is one member as /v1/cluster shows it.
type MemberStatus struct {
	ID         string      `json:"id"`
	State      MemberState `json:"state"`
	HTTPAddr   string      `json:"httpAddr"`
	RaftAddr   string      `json:"raftAddr"`
	GossipAddr string      `json:"gossipAddr"`
	Formed     bool        `json:"formed"`
	Draining   bool        `json:"draining"`
	Leading    int         `json:"leading"`
	Replicas   int         `json:"replicas"`
	Since      time.Time   `json:"since"`
}

// Members lists every node this node has seen, sorted by id.
func (n *Node) Members() []MemberStatus {
	var out []MemberStatus
	for _, m := range n.members.list() {
		ms := MemberStatus{ID: m.NodeID, State: m.State, HTTPAddr: m.HTTPAddr, RaftAddr: m.RaftAddr,
			GossipAddr: m.GossipAddr, Formed: m.Formed, Draining: m.Draining, Leading: m.LeaderCount(),
			Replicas: m.HostCount(), Since: m.Since}
		if m.NodeID == n.cfg.NodeID { // this node's own counts are exact
			ms.Leading, ms.Replicas, ms.Draining = len(n.ledShards()), len(n.host.Shards()), n.Draining()
		}
		out = append(out, ms)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ErrNoOtherVoter means a shard has no replica to hand leadership to.
var ErrNoOtherVoter = errors.New("the shard has no other replica to lead it")

// TransferLeadership hands leadership of shard s, which this node leads, to
// the voter to (or to the most up-to-date voter when to is empty).
func (n *Node) TransferLeadership(s uint32, to string) error {
	r := n.host.Shard(s)
	if r == nil {
		return &shard.NotHostedError{Shard: s}
	}
	if !r.IsLeader() {
		id, addr := r.Leader()
		return &shard.NotLeaderError{Shard: s, LeaderID: id, LeaderAddr: addr}
	}
	replicas := r.Status().Replicas
	if len(replicas) < 2 {
		return ErrNoOtherVoter
	}
	if to == "" {
		return r.TransferLeadership("", "")
	}
	for _, rep := range replicas {
		if rep.ID == to {
			if rep.Suffrage != "voter" {
				return fmt.Errorf("%s is not a voter of shard %d", to, s)
			}
			return r.TransferLeadership(to, rep.Address)
		}
	}
	return fmt.Errorf("%s is not a replica of shard %d", to, s)
}
