package cluster

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/shard"
)

// The reconciler runs on every node for the shards it leads. Each round it
// compares a group's configuration with the placement over the eligible
// members and makes at most one membership change, learner first:
//
//	create the empty replica on the target → AddNonvoter → wait until it has
//	caught up → AddVoter → (hand off leadership if the leaving replica leads)
//	→ RemoveServer → tell the old node to drop its replica.
//
// Replicas are added before any is removed, so a group never has fewer
// voters than the placement asks for while a move is under way. Every change
// passes the configuration index it was computed from as prevIndex, so that
// a concurrent change fails instead of stacking; that index is 0 for now
// (see shard.Configuration), which turns the check off, and raft only
// serializes the changes.

// catchUpLag is how close (in log entries) a new replica must be to the
// leader's last index before it is promoted to voter.
const catchUpLag = 64

// Move is one replica move in flight, shown by /v1/cluster.
type Move struct {
	Shard   uint32    `json:"shard"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	Step    string    `json:"step"`
	Started time.Time `json:"started"`
}

type moves struct {
	mu   sync.Mutex
	byID map[uint32]*Move
}

func (m *moves) get(s uint32) *Move {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byID[s]
}

func (m *moves) set(mv *Move) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mv.Step == "" {
		delete(m.byID, mv.Shard)
		return
	}
	m.byID[mv.Shard] = mv
}

func (m *moves) list() []Move {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Move, 0, len(m.byID))
	for _, mv := range m.byID {
		out = append(out, *mv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Shard < out[j].Shard })
	return out
}

func (n *Node) reconcileLoop() { n.everyRound(n.cfg.reconcileInterval, n.reconcileRound) }

func (n *Node) reconcileRound() {
	for _, mv := range n.moves.list() {
		if r := n.host.Shard(mv.Shard); r == nil || !r.IsLeader() {
			n.moves.set(&Move{Shard: mv.Shard}) // leadership moved on; the new leader resumes
		}
	}
	for _, r := range n.host.Shards() {
		// A round may take a shard through several steps (a learner that
		// caught up at once is promoted and its predecessor removed)
		// instead of one step per interval.
		for step := 0; step < 4 && r.IsLeader() && n.reconcileShard(r.ID()); step++ {
		}
	}
}

// eligible returns the nodes replicas may be placed on, and the replica
// count R (the configured count, capped by the number of nodes ever formed).
// Placement prefers live, non-draining nodes and keeps nodes that died
// within the grace period (they may be restarting), but not nodes that
// drained and left. Only when those are
// fewer than R does it fall back to draining nodes, then to nodes past their
// grace: a replica is moved off a node only if another node can hold it.
func (n *Node) eligible() (nodes []string, replicas int) {
	var active, draining, gone []string
	formed := 0
	for _, m := range n.members.list() {
		if !m.Formed {
			continue
		}
		formed++
		switch {
		case m.State == StateLeft: // drained and left on purpose
			gone = append(gone, m.NodeID)
		case m.live() && m.Draining:
			draining = append(draining, m.NodeID)
		case m.live(), time.Since(m.Since) < n.cfg.deadNodeGrace():
			active = append(active, m.NodeID)
		default:
			gone = append(gone, m.NodeID)
		}
	}
	replicas = min(n.cfg.Replicas, formed)
	nodes = active
	if len(nodes) < replicas {
		nodes = append(nodes, draining...)
	}
	if len(nodes) < replicas {
		nodes = append(nodes, gone...)
	}
	return nodes, replicas
}

// Desired is the placement of shard s over the currently eligible nodes.
func (n *Node) Desired(s uint32) []string {
	nodes, r := n.eligible()
	return Place(s, nodes, r)
}

// reconcileShard makes at most one change to shard s, which this node leads,
// and reports whether it changed the configuration.
func (n *Node) reconcileShard(s uint32) bool {
	r := n.host.Shard(s)
	cfg, idx, err := r.Configuration()
	if err != nil {
		return false
	}
	desired := n.Desired(s)
	if len(desired) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var voters, nonvoters []string
	for _, srv := range cfg.Servers {
		if srv.Suffrage == raft.Voter {
			voters = append(voters, string(srv.ID))
		} else {
			nonvoters = append(nonvoters, string(srv.ID))
		}
	}
	mv := n.moves.get(s)

	// 1. A voter that lost its replica (its disk was wiped) counts as
	// missing: remove it, so it can be added back as a fresh learner.
	for _, v := range voters {
		if m, ok := n.members.get(v); ok && m.live() && m.Formed && !m.HostsShard(s) &&
			v != n.cfg.NodeID && time.Since(m.Since) > 10*time.Second && len(voters) > 1 {
			index, err := r.RemoveReplica(v, idx)
			return n.changeConfig(s, "remove replica that lost its data", v, "", index, err)
		}
	}

	// 2. Promote a learner that has caught up, if it is placed here.
	for _, id := range nonvoters {
		if !slices.Contains(desired, id) {
			continue
		}
		m, ok := n.members.get(id)
		if !ok || !m.live() {
			continue
		}
		st, err := n.peers.replicaStatus(ctx, m.HTTPAddr, s)
		if err != nil || st.LastIndex+catchUpLag < r.LastIndex() {
			return false // still catching up
		}
		index, err := r.Promote(id, m.RaftAddr, idx)
		return n.changeConfig(s, "promote caught-up replica", "", id, index, err)
	}

	// 3. Add a placed node that has no replica yet, as a learner.
	for _, id := range desired {
		if slices.Contains(voters, id) || slices.Contains(nonvoters, id) {
			continue
		}
		m, ok := n.members.get(id)
		if !ok || !m.live() {
			continue
		}
		if mv == nil && n.leadingMoves() >= n.cfg.maxMoves() {
			return false // this node already leads as many moves as it may
		}
		if err := n.peers.createReplica(ctx, m.HTTPAddr, s); err != nil {
			n.logger.Debug("target cannot take a replica yet", "shard", s, "to", id, "err", err)
			return false
		}
		from := ""
		for _, v := range voters {
			if !slices.Contains(desired, v) {
				from = v
				break
			}
		}
		n.moves.set(&Move{Shard: s, From: from, To: id, Step: "catching-up", Started: time.Now()})
		index, err := r.AddLearner(id, m.RaftAddr, idx)
		return n.changeConfig(s, "add learner", "", id, index, err)
	}

	// 4. Every placed node is a voter: remove what is no longer placed.
	for _, id := range append(append([]string{}, nonvoters...), voters...) {
		if slices.Contains(desired, id) {
			continue
		}
		if id == n.cfg.NodeID {
			n.handOff(s, desired)
			return false
		}
		index, err := r.RemoveReplica(id, idx)
		if !n.changeConfig(s, "remove replica no longer placed", id, "", index, err) {
			return false
		}
		if m, ok := n.members.get(id); ok && m.live() {
			if err := n.peers.dropReplica(ctx, m.HTTPAddr, s); err != nil {
				n.logger.Info("old replica not dropped yet; its backstop will", "shard", s, "node", id, "err", err)
			}
		}
		return true
	}
	if mv != nil {
		n.logger.Info("replica move finished", "shard", s, "from", mv.From, "to", mv.To,
			"duration", time.Since(mv.Started).Round(time.Millisecond), "log_index", r.LastIndex(),
			"snapshot_bytes", r.SnapshotSize())
		n.moves.set(&Move{Shard: s})
	}
	return false
}

// changeConfig logs the outcome of a membership change. Losing leadership,
// or a transfer under way, is no failure: the next leader reconciles.
func (n *Node) changeConfig(s uint32, what, removed, added string, index uint64, err error) bool {
	if err != nil {
		var nle *shard.NotLeaderError
		if !errors.As(err, &nle) && !errors.Is(err, shard.ErrNotEnqueued) {
			n.logger.Warn("shard membership change failed", "shard", s, "change", what, "err", err)
		}
		return false
	}
	n.logger.Info("shard membership changed", "shard", s, "change", what, "removed", removed, "added", added, "index", index)
	return true
}

// handOff transfers leadership of s to a placed voter, so the next leader
// can remove this node.
func (n *Node) handOff(s uint32, desired []string) {
	r := n.host.Shard(s)
	for _, id := range desired {
		if m, ok := n.members.get(id); ok && m.live() && m.HostsShard(s) {
			n.logger.Info("handing off leadership before leaving the group", "shard", s, "to", id)
			if err := r.TransferLeadership(id, m.RaftAddr); err != nil {
				n.logger.Warn("leadership hand-off failed", "shard", s, "to", id, "err", err)
			}
			return
		}
	}
}

// MoveInFlight returns the move this node is leading for shard s, if any.
func (n *Node) MoveInFlight(s uint32) *Move { return n.moves.get(s) }

func (n *Node) leadingMoves() int {
	return len(n.moves.list())
}
