package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// MemberState is a member's liveness as memberlist sees it.
type MemberState string

const (
	StateAlive   MemberState = "alive"
	StateSuspect MemberState = "suspect"
	StateDead    MemberState = "dead"
	StateLeft    MemberState = "left"
)

// Member is one node as this node knows it from gossip.
type Member struct {
	Meta
	State      MemberState
	GossipAddr string
	Since      time.Time // when State last changed
}

// members is the gossip view: every node ever seen, by node id. memberlist
// calls the event methods from one goroutine at a time; readers take the
// lock.
//
// Members of another cluster are kept out of the view. Once this node has
// formed, a member whose metadata says it has formed too, but with another
// cluster id, is foreign: get and list never return it, so placement,
// leader routing, raft address resolution, replica moves, drain and
// /v1/cluster never see it. It is logged at WARN once per member and
// foreign cluster id. Members that have not formed (no cluster id yet) are
// never foreign: they are the nodes a cluster forms with or that join it
// as newcomers. A node that has not formed yet sees every member, so it
// can find the cluster to join; formation refuses to pick one when it sees
// more than one.
type members struct {
	mu      sync.RWMutex
	byID    map[string]*Member
	changed func() // called after every change, without the lock held
	logger  *slog.Logger

	// self is this node's id, set before gossip starts; cluster is the id
	// of the cluster this node belongs to, 0 until it has formed.
	self    string
	cluster atomic.Uint64

	// overQuotaMembers counts the members whose metadata says they are
	// over their data quota, so the write path (Node.checkQuota) can skip
	// the member list while there are none, which is nearly always. (Node's
	// own overQuota is this node's count, not gossip's.)
	overQuotaMembers atomic.Int32

	warnMu sync.Mutex
	warned map[string]uint64 // foreign members logged, with the cluster id logged
}

func newMembers(logger *slog.Logger) *members {
	return &members{byID: map[string]*Member{}, logger: logger, warned: map[string]uint64{}}
}

// localCluster is the id of the cluster this node belongs to, or 0.
func (m *members) localCluster() uint64 { return m.cluster.Load() }

// setCluster records the cluster this node has formed or joined; from then
// on members of other clusters are foreign.
func (m *members) setCluster(id uint64) { m.cluster.Store(id) }

// foreign reports whether mm belongs to another cluster than local (see
// members).
func (m *members) foreign(mm *Member, local uint64) bool {
	return local != 0 && mm.NodeID != m.self && mm.Formed && mm.ClusterID != local
}

// noteForeign logs a foreign member at WARN, once per member and cluster id.
func (m *members) noteForeign(mm Member, local uint64) {
	m.warnMu.Lock()
	logged, ok := m.warned[mm.NodeID]
	m.warned[mm.NodeID] = mm.ClusterID
	m.warnMu.Unlock()
	if ok && logged == mm.ClusterID {
		return
	}
	m.logger.Warn("ignoring a member of another cluster: it gets no replica, no request and no raft traffic from this node",
		"member", mm.NodeID, "member_cluster", fmt.Sprintf("%016x", mm.ClusterID),
		"cluster", fmt.Sprintf("%016x", local), "gossip_addr", mm.GossipAddr, "state", mm.State)
}

// forgetForeign clears the record of a member once it is no longer foreign,
// so that it is logged again if it becomes foreign later.
func (m *members) forgetForeign(id string) {
	m.warnMu.Lock()
	delete(m.warned, id)
	m.warnMu.Unlock()
}

func (m *members) set(n *memberlist.Node, state MemberState) {
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		m.logger.Warn("ignoring member with malformed metadata", "member", n.Name, "err", err)
		return
	}
	m.mu.Lock()
	cur := m.byID[n.Name]
	if cur == nil || cur.State != state {
		m.logger.Info("member state", "member", n.Name, "state", state, "addr", n.Address())
	}
	since := time.Now()
	if cur != nil && cur.State == state {
		since = cur.Since
	}
	mm := &Member{Meta: meta, State: state, GossipAddr: n.Address(), Since: since}
	m.byID[n.Name] = mm
	over := int32(0)
	for _, mm := range m.byID {
		if mm.OverQuota {
			over++
		}
	}
	m.overQuotaMembers.Store(over)
	m.mu.Unlock()
	if local := m.localCluster(); m.foreign(mm, local) {
		m.noteForeign(*mm, local)
	} else {
		m.forgetForeign(mm.NodeID)
	}
	if m.changed != nil {
		m.changed()
	}
}

// NotifyJoin, NotifyLeave and NotifyUpdate implement memberlist.EventDelegate.
func (m *members) NotifyJoin(n *memberlist.Node)   { m.set(n, nodeState(n)) }
func (m *members) NotifyUpdate(n *memberlist.Node) { m.set(n, nodeState(n)) }
func (m *members) NotifyLeave(n *memberlist.Node) {
	// memberlist does not tell a graceful leave from a death here; a node
	// that was draining left on purpose.
	state := StateDead
	if meta, err := DecodeMeta(n.Meta); err == nil && meta.Draining {
		state = StateLeft
	}
	m.set(n, state)
}

func nodeState(n *memberlist.Node) MemberState {
	switch n.State {
	case memberlist.StateSuspect:
		return StateSuspect
	case memberlist.StateDead:
		return StateDead
	case memberlist.StateLeft:
		return StateLeft
	}
	return StateAlive
}

// get returns a copy of one member; a foreign member is not found.
func (m *members) get(id string) (Member, bool) {
	local := m.localCluster()
	m.mu.RLock()
	mm := m.byID[id]
	var cp Member
	if mm != nil {
		cp = *mm
	}
	m.mu.RUnlock()
	switch {
	case mm == nil:
		return Member{}, false
	case m.foreign(&cp, local):
		m.noteForeign(cp, local)
		return Member{}, false
	}
	return cp, true
}

// list returns copies of every member of this node's cluster (and of no
// cluster yet), including dead ones; foreign members are left out.
func (m *members) list() []Member {
	local := m.localCluster()
	var foreign []Member
	m.mu.RLock()
	out := make([]Member, 0, len(m.byID))
	for _, mm := range m.byID {
		if m.foreign(mm, local) {
			foreign = append(foreign, *mm)
			continue
		}
		out = append(out, *mm)
	}
	m.mu.RUnlock()
	for _, mm := range foreign {
		m.noteForeign(mm, local)
	}
	return out
}

// live reports whether a member counts as up (suspect members still do:
// suspicion is how memberlist tolerates a slow probe).
func (mm *Member) live() bool { return mm.State == StateAlive || mm.State == StateSuspect }

// metaDelegate serves this node's metadata to memberlist.
type metaDelegate struct {
	meta   func() Meta
	logger *slog.Logger
}

func (d *metaDelegate) NodeMeta(limit int) []byte {
	m := d.meta()
	b, err := m.Encode()
	if err != nil || len(b) > limit {
		// Addresses are validated at start, so this means a bug; gossip
		// the node without its leadership hints rather than panic.
		d.logger.Error("node metadata too large; dropping shard hints", "err", err)
		m.Leads, m.Hosts = nil, nil
		b, _ = m.Encode()
	}
	return b
}
func (d *metaDelegate) NotifyMsg([]byte)                           {}
func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *metaDelegate) LocalState(join bool) []byte                { return nil }
func (d *metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// gossipLogWriter routes memberlist's "[LEVEL] memberlist: …" lines to slog
// at the matching level.
type gossipLogWriter struct{ logger *slog.Logger }

func newGossipLogger(l *slog.Logger) *log.Logger {
	return log.New(&gossipLogWriter{logger: l}, "", 0)
}

func (w *gossipLogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo,
		"[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError} {
		if len(line) >= len(prefix) && line[:len(prefix)] == prefix {
			level = l
			line = line[len(prefix):]
			break
		}
	}
	w.logger.Log(context.Background(), level, string(bytes.TrimSpace([]byte(line))), "component", "gossip")
	return len(p), nil
}
