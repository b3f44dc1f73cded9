package cluster

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/memberlist"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func gossipNode(t *testing.T, m Meta, state memberlist.NodeStateType) *memberlist.Node {
	t.Helper()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &memberlist.Node{Name: m.NodeID, Addr: net.ParseIP("127.0.0.1"), Port: 7946, Meta: b, State: state}
}

func memberNames(ms []Member) string { return strings.Join(memberIDs(ms), ",") }

// TestForeignMembersAreLeftOutOfTheViewOnceFormedAndWarnedOnce feeds the
// gossip view members of this cluster, of no cluster yet and of another
// cluster, and checks what placement, routing and formation get to see.
func TestForeignMembersAreLeftOutOfTheViewOnceFormedAndWarnedOnce(t *testing.T) {
	const ours, theirs = 0xaaaa, 0xbbbb
	var logs lockedBuffer
	m := newMembers(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	m.self = "n1"
	m.NotifyJoin(gossipNode(t, Meta{NodeID: "n1", ShardCount: 4, BootstrapExpect: 2, Incarnation: 1}, memberlist.StateAlive))
	m.NotifyJoin(gossipNode(t, Meta{NodeID: "n2", ClusterID: ours, Formed: true, ShardCount: 4}, memberlist.StateAlive))
	m.NotifyJoin(gossipNode(t, Meta{NodeID: "new", ShardCount: 4, Incarnation: 7}, memberlist.StateAlive))
	x1 := Meta{NodeID: "x1", ClusterID: theirs, Formed: true, ShardCount: 4, Leads: []byte{0x0f}, Hosts: []byte{0x0f}}
	m.NotifyJoin(gossipNode(t, x1, memberlist.StateAlive))

	// Not formed yet: every member is visible, so formation can tell that
	// gossip reaches two clusters (and refuse to pick one).
	if got := memberNames(m.list()); got != "n1,n2,new,x1" {
		t.Fatalf("unformed node sees %s, want every member", got)
	}
	if _, ok := m.get("x1"); !ok {
		t.Fatal("unformed node cannot see x1")
	}
	if strings.Contains(logs.String(), "another cluster") {
		t.Fatalf("warned before this node formed:\n%s", logs.String())
	}

	m.setCluster(ours)
	// The self entry may still carry the unformed metadata; it never counts
	// as foreign.
	m.NotifyUpdate(gossipNode(t, Meta{NodeID: "n1", ClusterID: theirs, Formed: true, ShardCount: 4}, memberlist.StateAlive))
	for i := 0; i < 5; i++ {
		if got := memberNames(m.list()); got != "n1,n2,new" {
			t.Fatalf("formed node sees %s, want x1 left out", got)
		}
		if _, ok := m.get("x1"); ok {
			t.Fatal("get returns a member of another cluster")
		}
		if _, ok := m.get("new"); !ok {
			t.Fatal("an unformed newcomer is hidden; it could never join")
		}
		// Its metadata keeps changing (leadership bits); that is no news.
		x1.Leads = []byte{byte(i)}
		m.NotifyUpdate(gossipNode(t, x1, memberlist.StateAlive))
	}
	addr, err := addressBook{m}.ServerAddr("x1")
	if err == nil {
		t.Fatalf("raft can resolve a foreign member: %s", addr)
	}
	if c := strings.Count(logs.String(), "member of another cluster"); c != 1 {
		t.Fatalf("foreign member warned %d times, want once:\n%s", c, logs.String())
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "member=x1") ||
		!strings.Contains(logs.String(), "member_cluster=000000000000bbbb") {
		t.Fatalf("warning does not name the member and its cluster:\n%s", logs.String())
	}

	// It joins yet another cluster: that is news again.
	x1.ClusterID = 0xcccc
	m.NotifyUpdate(gossipNode(t, x1, memberlist.StateAlive))
	m.list()
	if c := strings.Count(logs.String(), "member of another cluster"); c != 2 {
		t.Fatalf("foreign member warned %d times after changing cluster, want twice:\n%s", c, logs.String())
	}
	// Wiped and back unformed, it may join this cluster as a newcomer.
	m.NotifyUpdate(gossipNode(t, Meta{NodeID: "x1", ShardCount: 4, Incarnation: 9}, memberlist.StateAlive))
	if _, ok := m.get("x1"); !ok {
		t.Fatal("a wiped former foreign member cannot join as a newcomer")
	}
}
