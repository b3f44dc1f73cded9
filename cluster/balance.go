package cluster

import (
	"math/rand/v2"
	"time"

	"github.com/sessiond/sessiond/shard"
)

// balanceLoop spreads shard leadership: a node hands one shard per round to
// a replica on a node leading at least two fewer, until every node's count
// is within one of the others'. Counts come from gossip, so they can lag;
// the rate limit (one transfer per node per round) keeps that from causing
// churn.
func (n *Node) balanceLoop() {
	// Jittered, so nodes do not all judge the same stale counts at once.
	n.everyRound(func() time.Duration { return time.Second + rand.N(500*time.Millisecond) }, n.balanceOnce)
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
	own := counts[n.cfg.NodeID]
	lo := own
	for _, c := range counts {
		lo = min(lo, c)
	}
	if n.Draining() || own-lo < 2 {
		return
	}
	led := n.ledShards()
	// Direct: hand a shard to its least-loaded voter leading at least two
	// fewer. Each such move narrows the spread.
	for _, s := range led {
		if target := n.balanceTarget(s, counts, func(id string, c int) bool { return c <= own-2 }); target != nil {
			n.transferForBalance(s, target, own, counts)
			return
		}
	}
	// Two hops: when no voter of our shards is that far below, hand a shard
	// to a voter one below that leads (or will lead) a shard the least-loaded
	// node holds, so that node can pass one on next round.
	for _, s := range led {
		target := n.balanceTarget(s, counts, func(id string, c int) bool {
			return c == own-1 && n.canFeedLeast(id, s, counts, lo)
		})
		if target != nil {
			n.transferForBalance(s, target, own, counts)
			return
		}
	}
}

// balanceTarget picks, among shard s's live voters that hold a replica and
// satisfy ok, the one leading the fewest shards.
func (n *Node) balanceTarget(s uint32, counts map[string]int, ok func(id string, c int) bool) *shard.Replica {
	r := n.host.Shard(s)
	if r == nil {
		return nil
	}
	var best *shard.Replica
	for _, rep := range r.Status().Replicas {
		c, live := counts[rep.ID]
		if rep.ID == n.cfg.NodeID || !live || rep.Suffrage != "voter" || !ok(rep.ID, c) {
			continue
		}
		// A voter in the configuration may have lost its replica (a wiped
		// disk); only a node that says it holds one can lead.
		if m, found := n.members.get(rep.ID); !found || !m.HostsShard(s) {
			continue
		}
		if best == nil || c < counts[best.ID] {
			rep := rep
			best = &rep
		}
	}
	return best
}

// canFeedLeast reports whether node id, once it also leads shard s, leads a
// shard that some least-loaded node holds a replica of.
func (n *Node) canFeedLeast(id string, s uint32, counts map[string]int, lo int) bool {
	y, ok := n.members.get(id)
	if !ok {
		return false
	}
	for zid, c := range counts {
		if c != lo || zid == id {
			continue
		}
		z, ok := n.members.get(zid)
		if !ok {
			continue
		}
		for t := uint32(0); int(t) < n.cfg.ShardCount; t++ {
			if (t == s || y.LeadsShard(t)) && z.HostsShard(t) {
				return true
			}
		}
	}
	return false
}

func (n *Node) transferForBalance(s uint32, target *shard.Replica, own int, counts map[string]int) {
	n.logger.Info("moving shard leadership to balance load", "shard", s, "to", target.ID,
		"leading", own, "target_leading", counts[target.ID])
	r := n.host.Shard(s)
	if r == nil {
		return
	}
	if err := r.TransferLeadership(target.ID, target.Address); err != nil {
		n.logger.Warn("leadership transfer failed", "shard", s, "to", target.ID, "err", err)
	}
}
