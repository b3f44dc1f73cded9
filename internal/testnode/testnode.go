// Package testnode starts in-process sessiond clusters for the tests of
// packages outside the server: real raft over loopback TCP, memberlist,
// data in t.TempDir() and the HTTP API on a loopback port. Nodes are not
// restarted, so every port is chosen by the kernel.
package testnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/httpapi"
)

// Node is one running node.
type Node struct {
	ID   string
	URL  string // base URL of its HTTP API
	node *cluster.Node
	srv  *httptest.Server
}

// Options size a cluster; zero values take the defaults in brackets.
type Options struct {
	Nodes    int // [1]
	Shards   int // [4]
	Replicas int // [3, capped by Nodes]
	// API changes each node's HTTP configuration before it starts.
	API func(*httpapi.Config)
}

// Start starts a cluster, waits until every node is ready, and stops it
// when the test ends. It fails the test when the cluster does not form.
func Start(tb testing.TB, o Options) []*Node {
	tb.Helper()
	nodes, err := startCluster(o, func() (string, error) { return tb.TempDir(), nil })
	tb.Cleanup(func() { Stop(nodes) })
	if err != nil {
		tb.Fatal(err)
	}
	return nodes
}

// StartMain is Start for a TestMain, which has no testing.TB: the caller
// calls the returned stop, which also removes the data directories.
func StartMain(o Options) (nodes []*Node, stop func(), err error) {
	var dirs []string
	nodes, err = startCluster(o, func() (string, error) {
		d, err := os.MkdirTemp("", "sessiond-test-")
		dirs = append(dirs, d)
		return d, err
	})
	stop = func() {
		Stop(nodes)
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	return nodes, stop, nil
}

// Stop kills every node.
func Stop(nodes []*Node) {
	for _, n := range nodes {
		if n != nil {
			n.Kill()
		}
	}
}

func startCluster(o Options, tempDir func() (string, error)) ([]*Node, error) {
	if o.Nodes <= 0 {
		o.Nodes = 1
	}
	if o.Shards <= 0 {
		o.Shards = 4
	}
	if o.Replicas <= 0 {
		o.Replicas = 3
	}
	gossip := make([]*heldPort, o.Nodes)
	defer func() {
		for _, g := range gossip {
			g.release() // those of nodes that never started
		}
	}()
	var join []string
	for i := range gossip {
		g, err := freeGossipPort()
		if err != nil {
			return nil, err
		}
		gossip[i] = g
		join = append(join, g.addr())
	}
	nodes := make([]*Node, 0, o.Nodes)
	for i := range gossip {
		addr := gossip[i].addr()
		gossip[i].release() // memberlist binds it next
		dir, err := tempDir()
		if err != nil {
			return nodes, err
		}
		n, err := start(fmt.Sprintf("n%d", i+1), dir, addr, join, o)
		if err != nil {
			return nodes, err
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if err := n.waitReady(); err != nil {
			return nodes, err
		}
	}
	return nodes, nil
}

// heldPort is a loopback port held over both TCP and UDP (memberlist uses
// both) until its node starts: released earlier, the TCP side could be
// taken by a listener or connection of the nodes started before it, or of
// a test running beside it.
type heldPort struct {
	tcp net.Listener
	udp net.PacketConn
}

func (p *heldPort) addr() string { return p.tcp.Addr().String() }

// release frees the port; it may be called again.
func (p *heldPort) release() {
	if p != nil && p.tcp != nil {
		p.tcp.Close()
		p.udp.Close()
		p.tcp, p.udp = nil, nil
	}
}

// freeGossipPort holds a loopback port free over both TCP and UDP.
func freeGossipPort() (*heldPort, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", l.Addr().String())
		if err == nil {
			return &heldPort{tcp: l, udp: u}, nil
		}
		l.Close()
	}
	return nil, errors.New("no free gossip port")
}

func start(id, dir, gossipAddr string, join []string, o Options) (*Node, error) {
	raftLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		raftLn.Close()
		return nil, err
	}
	level := slog.LevelError + 4 // quiet unless asked
	if os.Getenv("SESSIOND_TEST_LOG") != "" {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("node", id)
	node, err := cluster.Start(cluster.Config{
		NodeID: id, DataDir: dir, RaftListener: raftLn,
		RaftAdvertise: raftLn.Addr().String(), HTTPAdvertise: httpLn.Addr().String(),
		GossipBind: gossipAddr, Join: join,
		BootstrapExpect: o.Nodes, ShardCount: o.Shards, Replicas: o.Replicas,
		ShardTuning: cluster.ShardTuning{Heartbeat: 300 * time.Millisecond}, // quick elections
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
		return nil, fmt.Errorf("start %s: %w", id, err)
	}
	api := httpapi.DefaultConfig()
	api.Logger, api.Cluster, api.Replicas, api.Version = logger, node, node, "test"
	if o.API != nil {
		o.API(&api)
	}
	srv := httptest.NewUnstartedServer(httpapi.New(node, api))
	srv.Listener.Close()
	srv.Listener = httpLn
	srv.Start()
	return &Node{ID: id, URL: srv.URL, node: node, srv: srv}, nil
}

// waitReady waits up to a minute for GET /readyz to answer 200.
func (n *Node) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within a minute", n.ID)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Kill stops the node as a crash would: connections cut, no goodbye.
// Killing a killed node does nothing.
func (n *Node) Kill() {
	if n.node == nil {
		return
	}
	n.srv.CloseClientConnections()
	n.srv.Close()
	n.node.Kill()
	n.node = nil
}

// Leader is the node leading shard s as this node knows it, "" if none.
func (n *Node) Leader(s uint32) string {
	id, _, _ := n.node.Leader(s)
	return id
}
