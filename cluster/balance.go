package cluster

import (
	"math/rand/v2"
	"time"

	"github.com/hashicorp/raft"
)

// balanceLoop spreads shard leadership: a node leading more than
// ⌈shards/nodes⌉ shards hands one of them, per round, to a replica on the
// node leading the fewest. Counts come from gossip, so they can lag; the
// rate limit keeps that from causing churn.
func (n *Node) balanceLoop() {
	defer n.wg.Done()
	select {
	case <-n.formedCh:
	case <-n.stop:
		return
	}
	for {
		select {
		case <-n.stop:
			return
		case <-time.After(time.Second + rand.N(500*time.Millisecond)):
		}
		n.balanceOnce()
	}
}

// leaderCounts returns how many shards each live node that holds replicas
// leads (from gossip), and this node's own count (from raft).
func (n *Node) leaderCounts() map[string]int {
	counts := map[string]int{}
	for _, m := range n.members.list() {
		if m.live() && m.Formed && !m.Draining && m.HostCount() > 0 && m.NodeID != n.cfg.NodeID {
			counts[m.NodeID] = m.LeaderCount()
		}
	}
	own := 0
	for _, s := range n.host.Shards() {
		if s.IsLeader() {
			own++
		}
	}
	counts[n.cfg.NodeID] = own
	return counts
}

func (n *Node) balanceOnce() {
	counts := n.leaderCounts()
	nodes := len(counts)
	limit := (n.cfg.ShardCount + nodes - 1) / nodes
	if counts[n.cfg.NodeID] <= limit {
		return
	}
	for _, s := range n.host.Shards() {
		if !s.IsLeader() {
			continue
		}
		target, addr := "", raft.ServerAddress("")
		for _, r := range s.Status().Replicas {
			c, live := counts[r.ID]
			if r.ID == n.cfg.NodeID || !live || r.Suffrage != "voter" || c >= limit {
				continue
			}
			// A voter in the configuration may have lost its replica (a
			// wiped disk); only a node that says it holds one can lead.
			if m, ok := n.members.get(r.ID); !ok || !m.HostsShard(s.ID()) {
				continue
			}
			if target == "" || c < counts[target] {
				target, addr = r.ID, raft.ServerAddress(r.Address)
			}
		}
		if target == "" {
			continue
		}
		n.logger.Info("moving shard leadership to balance load", "shard", s.ID(), "to", target,
			"leading", counts[n.cfg.NodeID], "limit", limit)
		if err := s.Raft().LeadershipTransferToServer(raft.ServerID(target), addr).Error(); err != nil {
			n.logger.Warn("leadership transfer failed", "shard", s.ID(), "to", target, "err", err)
		}
		return // one transfer per round
	}
}
