package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
)

// Drain takes this node out of service without losing a write: it gossips
// that it is draining, so shard leaders move its replicas to other nodes
// (learner first, as for any move) and the balancer stops giving it
// leadership; it hands off leadership of every shard it leads (again if it
// wins an election meanwhile); and it returns once its replicas are gone. When the other nodes cannot hold every
// replica (fewer than --replicas remain), the replicas stay and only
// leadership is handed off. Drain returns when done or when ctx ends; the
// caller then closes the node.
func (n *Node) Drain(ctx context.Context) error {
	n.mu.Lock()
	already := n.draining
	n.draining = true
	n.mu.Unlock()
	if !already {
		n.logger.Info("draining: moving replicas and leadership to other nodes")
		n.kickMeta()
	}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	// Replicas that cannot move (too few other nodes) are left behind only
	// once that has held for a few rounds: a node that gossip suspects for
	// a moment under load is no reason to stop moving replicas.
	const unmovableRounds = 4
	unmovable := 0
	for {
		if n.othersCanHoldReplicas() {
			unmovable = 0
		} else {
			unmovable++
		}
		led := n.ledShards()
		hosted := len(n.host.Shards())
		stuck := 0 // led shards with no other live voter to take over
		for _, s := range led {
			if !n.handOffToAnyVoter(s) {
				stuck++
			}
		}
		if len(led) == stuck && (hosted == 0 || unmovable >= unmovableRounds) {
			n.logger.Info("drain complete", "replicas_left", hosted)
			return nil
		}
		select {
		case <-ctx.Done():
			n.logger.Warn("drain did not finish in time", "leading", len(led), "replicas", hosted)
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Draining reports whether Drain has been called.
func (n *Node) Draining() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.draining
}

// othersCanHoldReplicas reports whether enough other live, formed,
// non-draining nodes exist to hold every replica without this node.
func (n *Node) othersCanHoldReplicas() bool {
	others, formed := 0, 0
	for _, m := range n.members.list() {
		if !m.Formed {
			continue
		}
		formed++
		if m.NodeID != n.cfg.NodeID && m.live() && !m.Draining {
			others++
		}
	}
	return others >= min(n.cfg.Replicas, formed)
}

func (n *Node) ledShards() []uint32 {
	var out []uint32
	for _, r := range n.host.Shards() {
		if r.IsLeader() {
			out = append(out, r.ID())
		}
	}
	return out
}

// handOffToAnyVoter transfers leadership of s to another live voter. It
// reports false when there is none to take it.
func (n *Node) handOffToAnyVoter(s uint32) bool {
	r := n.host.Shard(s)
	if r == nil || !r.IsLeader() {
		return true
	}
	cfg, _, err := r.Configuration()
	if err != nil {
		return true
	}
	for _, srv := range cfg.Servers {
		m, ok := n.members.get(string(srv.ID))
		if srv.ID == raft.ServerID(n.cfg.NodeID) || srv.Suffrage != raft.Voter || !ok || !m.live() || m.Draining {
			continue
		}
		if err := r.TransferLeadership(string(srv.ID), string(srv.Address)); err != nil {
			n.logger.Warn("leadership hand-off failed", "shard", s, "to", srv.ID, "err", err)
			return true // a candidate exists; try again next round
		}
		n.logger.Info("handed off leadership", "shard", s, "to", srv.ID)
		return true
	}
	return false
}
