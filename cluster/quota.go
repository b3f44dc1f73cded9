package cluster

import (
	"fmt"
	"time"

	"github.com/sessiond/sessiond/fsm"
)

// The data quota bounds the session data a node holds in memory, as etcd's
// space quota bounds its backend. A node over its quota raises an alarm in
// its gossip metadata; while any node that replicates a shard has the
// alarm up, writes that add data to that shard are refused everywhere with
// NoSpaceError, because every replica must be able to hold every entry.
// Reads and deletes go on, so operators and clients can make room. The
// alarm clears by itself once the node is back under 95 % of its quota.

// NoSpaceError refuses a write because a node holding a replica of the
// shard is over its data quota.
type NoSpaceError struct {
	Shard uint32
	Node  string
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("node %s, which holds a replica of shard %d, is over its data quota (--max-data-bytes); delete sessions or raise the quota", e.Node, e.Shard)
}

// Alarm is a node over its data quota, as /v1/cluster reports it. DataBytes
// and MaxDataBytes are known for this node only.
type Alarm struct {
	Node         string `json:"node"`
	Kind         string `json:"kind"` // "nospace"
	DataBytes    int64  `json:"dataBytes,omitempty"`
	MaxDataBytes int64  `json:"maxDataBytes,omitempty"`
}

// quotaCheckInterval is how often a node compares its data with its quota.
const quotaCheckInterval = time.Second

// DataBytes estimates the session data this node's replicas hold.
func (n *Node) DataBytes() int64 {
	var sum int64
	for _, r := range n.host.Shards() {
		sum += r.FSM().Bytes()
	}
	return sum
}

// quotaLoop raises and clears this node's alarm.
func (n *Node) quotaLoop() {
	n.everyRound(func() time.Duration { return quotaCheckInterval }, n.quotaRound)
}

func (n *Node) quotaRound() {
	limit := n.cfg.MaxDataBytes
	used := n.DataBytes()
	switch over := n.overQuota.Load(); {
	case !over && used >= limit:
		n.overQuota.Store(true)
		n.logger.Warn("data quota reached: writes to this node's shards are refused until data is deleted",
			"data_bytes", used, "max_data_bytes", limit)
		n.kickMeta()
	case over && used < limit/100*95:
		n.overQuota.Store(false)
		n.logger.Info("back under the data quota: writes accepted again", "data_bytes", used, "max_data_bytes", limit)
		n.kickMeta()
	}
}

// frees reports whether cmd can only shrink the data, so it is allowed
// while an alarm is up.
func frees(cmd *fsm.Command) bool {
	switch cmd.Op {
	case fsm.OpDeleteSession, fsm.OpDeleteField, fsm.OpExpire, fsm.OpNoop, fsm.OpSetExpiry,
		fsm.OpDeleteAlarm, fsm.OpFireAlarm, fsm.OpAlarmDelivered:
		return true
	}
	return false
}

// checkQuota refuses cmd on shard s while a node holding a replica of s has
// its alarm up (as far as gossip has told this node).
func (n *Node) checkQuota(s uint32, cmd *fsm.Command) error {
	if frees(cmd) {
		return nil
	}
	if n.overQuota.Load() && n.host.Shard(s) != nil {
		return &NoSpaceError{Shard: s, Node: n.cfg.NodeID}
	}
	if n.members.overQuotaMembers.Load() == 0 {
		return nil
	}
	for _, m := range n.members.list() {
		if m.NodeID != n.cfg.NodeID && m.live() && m.OverQuota && m.HostsShard(s) {
			return &NoSpaceError{Shard: s, Node: m.NodeID}
		}
	}
	return nil
}

// Alarms lists the nodes over their data quota: this one from its own
// count, the others from gossip.
func (n *Node) Alarms() []Alarm {
	out := []Alarm{}
	if n.overQuota.Load() {
		out = append(out, Alarm{Node: n.cfg.NodeID, Kind: "nospace", DataBytes: n.DataBytes(), MaxDataBytes: n.cfg.MaxDataBytes})
	}
	for _, m := range n.members.list() {
		if m.NodeID != n.cfg.NodeID && m.live() && m.OverQuota {
			out = append(out, Alarm{Node: m.NodeID, Kind: "nospace"})
		}
	}
	return out
}
