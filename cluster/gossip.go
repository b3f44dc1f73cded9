package cluster

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"sync"
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
type members struct {
	mu      sync.RWMutex
	byID    map[string]*Member
	changed func() // called after every change, without the lock held
	logger  *slog.Logger
}

func newMembers(logger *slog.Logger) *members {
	return &members{byID: map[string]*Member{}, logger: logger}
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
	m.byID[n.Name] = &Member{Meta: meta, State: state, GossipAddr: n.Address(), Since: since}
	m.mu.Unlock()
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

// get returns a copy of one member.
func (m *members) get(id string) (Member, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if mm := m.byID[id]; mm != nil {
		return *mm, true
	}
	return Member{}, false
}

// list returns copies of every member, including dead ones.
func (m *members) list() []Member {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Member, 0, len(m.byID))
	for _, mm := range m.byID {
		out = append(out, *mm)
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
