package check

// The checker against an in-process cluster: three nodes with real raft,
// boltdb files in t.TempDir(), memberlist and HTTP on loopback, hurt by
// crashing and restarting nodes. It gives developers the linearizability
// and durability check without Docker or root.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/httpapi"
)

type memNode struct {
	name, dir                      string
	raftPort, httpPort, gossipPort int
	join                           []string

	mu   sync.Mutex
	node *cluster.Node
	srv  *httptest.Server
}

// memTarget implements Target with in-process nodes. It crashes, stops
// and restarts nodes; pauses and partitions need real processes.
type memTarget struct {
	t     *testing.T
	nodes []*memNode
}

// handedOut holds every port freeLoopbackPort returned in this process, so
// two nodes never get the same one before either has bound it.
var handedOut sync.Map

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	for range 1000 {
		// Below the ephemeral range, so a restarted node finds its port
		// free, and apart from the cluster package's 20000-31999 (go test
		// runs packages in parallel) and the compose scripts' 18081+.
		port := 10000 + rand.IntN(8000)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func startMemCluster(t *testing.T, size int) *memTarget {
	mt := &memTarget{t: t}
	var join []string
	for i := range size {
		n := &memNode{name: fmt.Sprintf("node%d", i+1), dir: t.TempDir(),
			raftPort: freeLoopbackPort(t), httpPort: freeLoopbackPort(t), gossipPort: freeLoopbackPort(t)}
		join = append(join, fmt.Sprintf("127.0.0.1:%d", n.gossipPort))
		mt.nodes = append(mt.nodes, n)
	}
	for _, n := range mt.nodes {
		n.join = join
		if err := n.start(size); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, n := range mt.nodes {
			n.kill()
		}
	})
	return mt
}

func listenRetry(port int) (net.Listener, error) {
	var err error
	for range 100 { // a just-closed port may linger briefly
		var l net.Listener
		if l, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			return l, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, err
}

func (n *memNode) start(expect int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.node != nil {
		return nil
	}
	raftLn, err := listenRetry(n.raftPort)
	if err != nil {
		return err
	}
	httpLn, err := listenRetry(n.httpPort)
	if err != nil {
		raftLn.Close()
		return err
	}
	level := slog.LevelError + 4
	if os.Getenv("SESSIOND_TEST_LOG") != "" {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("node", n.name)
	node, err := cluster.Start(cluster.Config{
		NodeID: n.name, DataDir: n.dir, RaftListener: raftLn,
		RaftAdvertise: raftLn.Addr().String(), HTTPAdvertise: httpLn.Addr().String(),
		GossipBind: fmt.Sprintf("127.0.0.1:%d", n.gossipPort), Join: n.join,
		BootstrapExpect: expect, ShardCount: 4, Replicas: 3,
		// A restarted node catches up from a snapshot (320 trailing entries).
		ShardTuning: cluster.ShardTuning{SnapshotThreshold: 256, Heartbeat: 300 * time.Millisecond},
		Logger:      logger,
		TuneGossip: func(c *memberlist.Config) {
			c.ProbeInterval, c.ProbeTimeout = 200*time.Millisecond, 100*time.Millisecond
			c.GossipInterval, c.SuspicionMult = 50*time.Millisecond, 2
			c.PushPullInterval, c.DeadNodeReclaimTime = 2*time.Second, time.Second
		},
		ReconcileInterval: 200 * time.Millisecond, BackstopInterval: time.Second,
	})
	if err != nil {
		httpLn.Close()
		return err
	}
	api := httpapi.DefaultConfig()
	api.Logger, api.Cluster, api.Replicas = logger, node, node
	srv := httptest.NewUnstartedServer(httpapi.New(node, api))
	srv.Listener.Close()
	srv.Listener = httpLn
	srv.Start()
	n.node, n.srv = node, srv
	return nil
}

// kill stops the node the way a crash does: connections cut, no leave.
func (n *memNode) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.node == nil {
		return
	}
	n.srv.CloseClientConnections()
	n.srv.Close()
	n.node.Kill()
	n.node = nil
}

// stop drains the node, then closes it, as SIGTERM does.
func (n *memNode) stop(ctx context.Context) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.node == nil {
		return
	}
	_ = n.node.Drain(ctx)
	n.srv.Close()
	n.node.Close()
	n.node = nil
}

func (m *memTarget) node(name string) *memNode {
	for _, n := range m.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (m *memTarget) Nodes() []Node {
	out := make([]Node, len(m.nodes))
	for i, n := range m.nodes {
		out[i] = Node{Name: n.name, URL: fmt.Sprintf("http://127.0.0.1:%d", n.httpPort)}
	}
	return out
}

func (m *memTarget) Kill(_ context.Context, name string) error { m.node(name).kill(); return nil }
func (m *memTarget) Start(_ context.Context, name string) error {
	return m.node(name).start(len(m.nodes))
}
func (m *memTarget) Stop(ctx context.Context, name string) error {
	m.node(name).stop(ctx)
	return nil
}
func (m *memTarget) Drain(ctx context.Context, name string) error {
	m.node(name).stop(ctx)
	return nil
}
func (m *memTarget) Pause(context.Context, string) error         { return errors.ErrUnsupported }
func (m *memTarget) Resume(context.Context, string) error        { return errors.ErrUnsupported }
func (m *memTarget) Isolate(context.Context, string, bool) error { return errors.ErrUnsupported }
func (m *memTarget) Heal(context.Context, string, bool) error    { return errors.ErrUnsupported }

// TestNoAcknowledgedWriteIsLostWhenNodesCrash runs the checker's workload
// against three in-process nodes while nodes crash, the busiest leader
// crashes and nodes restart gracefully, then checks the history and what
// the change streams of the sessions followed delivered.
func TestNoAcknowledgedWriteIsLostWhenNodesCrash(t *testing.T) {
	target := startMemCluster(t, 3)
	wl := DefaultWorkload()
	wl.Clients, wl.Sessions, wl.OpsPerSession = 8, 12, 150
	wl.RunID = fmt.Sprintf("mem%d", time.Now().UnixNano()%1e6)
	rep, err := Run(context.Background(), Config{
		Target: target, Workload: wl, Duration: 40 * time.Second, Warmup: 3 * time.Second,
		Faults: FaultConfig{Kinds: []string{FaultKill, FaultLeaderKill, FaultRestart}, Interval: 2 * time.Second, Seed: 7},
		OutDir: t.TempDir(), Logf: t.Logf, StreamReaders: DefaultStreamReaders,
	})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Log("\n" + text.String())
	if !rep.Pass {
		t.Fatalf("the run found problems (see the report above)")
	}
	if rep.Acked < 500 || len(rep.FaultLog) < 3 {
		t.Fatalf("too little happened to mean anything: %d acknowledged writes, %d faults", rep.Acked, len(rep.FaultLog))
	}
	if st := rep.Streams; st.Sessions < DefaultStreamReaders || st.Messages == 0 || st.Acked == 0 {
		t.Fatalf("the change streams checked too little: %+v", st)
	}
	for _, kind := range []string{FaultKill, FaultLeaderKill, FaultRestart} {
		if rep.Faults[kind] == 0 {
			t.Errorf("no %s fault was injected", kind)
		}
	}
}
