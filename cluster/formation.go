package cluster

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// membershipLoop forms or joins a cluster, then settles it.
//
// Formation (Consul's bootstrap-expect, made safe against wiped disks):
//   - With no identity on disk and no formed cluster in sight, the node waits
//     until exactly --bootstrap-expect unformed nodes see each other. Each of
//     them then computes the same placement and bootstraps the shards placed
//     on it with the same configuration; the cluster id is a hash of the
//     founders' ids, so all founders agree on it without talking.
//   - A founder that is slower than the others sees them formed but not yet
//     settled, recognises itself among the founders by the cluster id (a
//     hash of the founders' ids and incarnations), and bootstraps its shards
//     too. A node that does not match — a newcomer, or a founder that lost
//     its data dir and so its incarnation — joins instead.
//   - Once every founder has formed, the cluster is settled (persisted).
//     From then on a node without an identity — new, or an old member whose
//     data dir was wiped — joins as a newcomer and never bootstraps: a
//     re-bootstrapped shard would be a second owner of the same sessions.
func (n *Node) membershipLoop() {
	defer n.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		n.mu.Lock()
		formed, settled := n.formed, n.identity.Settled
		n.mu.Unlock()
		var err error
		switch {
		case !formed:
			err = n.tryForm()
		case !settled:
			err = n.trySettle()
		default:
			return
		}
		if err != nil {
			n.logger.Error("cannot join the cluster", "err", err)
			n.fail(err)
			return
		}
	}
}

// tryForm runs one formation step for a node without an identity.
func (n *Node) tryForm() error {
	var formed, unformed []Member
	clusters := map[uint64]bool{}
	settled := false
	for _, m := range n.members.list() {
		if !m.live() {
			continue
		}
		if m.Formed {
			if m.ShardCount != n.cfg.ShardCount {
				return fmt.Errorf("the cluster has %d shards but this node was started with --shards %d; start it with --shards %d",
					m.ShardCount, n.cfg.ShardCount, m.ShardCount)
			}
			formed = append(formed, m)
			clusters[m.ClusterID] = true
			settled = settled || m.Settled
		} else if m.BootstrapExpect == n.cfg.BootstrapExpect && m.ShardCount == n.cfg.ShardCount {
			unformed = append(unformed, m)
		}
	}
	if len(clusters) > 1 {
		n.logger.Error("gossip reaches more than one sessiond cluster; not joining any", "clusters", len(clusters))
		return nil
	}
	if len(formed) > 0 {
		id := formed[0].ClusterID
		if settled {
			return n.adopt(id)
		}
		self, ok := n.members.get(n.cfg.NodeID)
		if !ok {
			return nil
		}
		// Other founders may be as slow as we are: look for the founding
		// set among the formed nodes, us, and the other unformed nodes.
		var others []Member
		for _, m := range unformed {
			if m.NodeID != n.cfg.NodeID {
				others = append(others, m)
			}
		}
		base := append(append([]Member{}, formed...), self)
		if founders := foundingSet(base, others, n.cfg.BootstrapExpect, id); founders != nil {
			return n.found(id, founders) // a founder, slower than the rest
		}
		if len(base) >= n.cfg.BootstrapExpect {
			return n.adopt(id) // the founders are all known and we are not one
		}
		return nil // a formation is under way; wait until it is clear who founded
	}
	switch {
	case len(unformed) == n.cfg.BootstrapExpect:
		return n.found(clusterIDOf(unformed), unformed)
	case len(unformed) > n.cfg.BootstrapExpect:
		n.logger.Warn("more unformed nodes than --bootstrap-expect; not bootstrapping",
			"seen", len(unformed), "expect", n.cfg.BootstrapExpect)
	}
	return nil
}

// found bootstraps, as one of the founders, every shard placed on this node.
func (n *Node) found(clusterID uint64, founders []Member) error {
	ids := memberIDs(founders)
	raftAddr := map[string]string{}
	for _, m := range founders {
		raftAddr[m.NodeID] = m.RaftAddr
	}
	n.host.SetClusterID(clusterID)
	r := min(n.cfg.Replicas, len(ids))
	for s := uint32(0); int(s) < n.cfg.ShardCount; s++ {
		placed := Place(s, ids, r)
		if !slices.Contains(placed, n.cfg.NodeID) {
			continue
		}
		servers := make([]raft.Server, len(placed))
		for i, id := range placed {
			servers[i] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(raftAddr[id])}
		}
		sh, err := n.host.OpenShard(s)
		if err != nil {
			return err
		}
		if err := sh.Bootstrap(servers); err != nil {
			return fmt.Errorf("bootstrap shard %d: %w", s, err)
		}
	}
	id := Identity{ClusterID: clusterID, ShardCount: n.cfg.ShardCount, NodeID: n.cfg.NodeID,
		Founders: ids, Incarnation: n.incarnation, Settled: len(ids) == 1}
	if err := n.becomeFormed(id); err != nil {
		return err
	}
	n.logger.Info("bootstrapped cluster", "cluster", fmt.Sprintf("%016x", clusterID), "founders", strings.Join(ids, ","),
		"shards", n.cfg.ShardCount, "replicas", r)
	return nil
}

// adopt joins an existing, settled cluster as a newcomer holding no replica.
func (n *Node) adopt(clusterID uint64) error {
	n.host.SetClusterID(clusterID)
	id := Identity{ClusterID: clusterID, ShardCount: n.cfg.ShardCount, NodeID: n.cfg.NodeID,
		Incarnation: n.incarnation, Settled: true}
	if err := n.becomeFormed(id); err != nil {
		return err
	}
	n.logger.Info("joined existing cluster", "cluster", fmt.Sprintf("%016x", clusterID))
	return nil
}

func (n *Node) becomeFormed(id Identity) error {
	if err := SaveIdentity(n.cfg.DataDir, id); err != nil {
		return err
	}
	n.mu.Lock()
	n.identity, n.formed = id, true
	n.mu.Unlock()
	n.members.setCluster(id.ClusterID)
	close(n.formedCh)
	n.kickMeta()
	return nil
}

// trySettle marks the cluster settled once every founder has formed.
func (n *Node) trySettle() error {
	n.mu.Lock()
	id := n.identity
	n.mu.Unlock()
	for _, f := range id.Founders {
		m, ok := n.members.get(f)
		if !ok || !m.live() || !m.Formed || m.ClusterID != id.ClusterID {
			return nil
		}
	}
	id.Settled = true
	if err := SaveIdentity(n.cfg.DataDir, id); err != nil {
		return err
	}
	n.mu.Lock()
	n.identity = id
	n.mu.Unlock()
	n.kickMeta()
	n.logger.Info("cluster settled: every founder has formed")
	return nil
}

// foundingSet looks for k members, all of base plus some of extra, whose
// cluster id is id, and returns them (nil if there are none). k is
// --bootstrap-expect, small, so trying the combinations is cheap.
func foundingSet(base, extra []Member, k int, id uint64) []Member {
	need := k - len(base)
	if need < 0 || need > len(extra) {
		return nil
	}
	var pick func(start int, chosen []Member) []Member
	pick = func(start int, chosen []Member) []Member {
		if len(chosen) == k {
			if clusterIDOf(chosen) == id {
				return append([]Member(nil), chosen...)
			}
			return nil
		}
		for i := start; i < len(extra); i++ {
			if got := pick(i+1, append(chosen, extra[i])); got != nil {
				return got
			}
		}
		return nil
	}
	return pick(0, append([]Member(nil), base...))
}

// clusterIDOf derives the cluster id from the founders' node ids and
// incarnations.
func clusterIDOf(founders []Member) uint64 {
	sorted := append([]Member(nil), founders...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].NodeID < sorted[j].NodeID })
	h := fnv.New64a()
	for _, m := range sorted {
		h.Write([]byte(m.NodeID))
		h.Write([]byte{0})
		h.Write(binary.BigEndian.AppendUint64(nil, m.Incarnation))
	}
	if v := h.Sum64(); v != 0 {
		return v
	}
	return 1
}

func memberIDs(ms []Member) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.NodeID
	}
	sort.Strings(ids)
	return ids
}
