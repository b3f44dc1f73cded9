package cluster_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/internal/poll"
	"github.com/sessiond/sessiond/shard"
)

// testNode is one in-process sessiond node: a cluster.Node with real raft,
// memberlist and HTTP listeners on loopback ports that survive a restart.
type testNode struct {
	t                              *testing.T
	id, dir                        string
	raftPort, httpPort, gossipPort int
	node                           *cluster.Node
	srv                            *httptest.Server
	shards, expect, replicas       int
	join                           []string
	tune                           func(*cluster.Config)
}

// handedOut holds every port freePort returned in this process: a port is
// only probed, not held, until its node starts, so without this record a
// cluster's nine ports could include the same one twice.
var handedOut sync.Map

// freePort picks a free port below Linux's ephemeral range (32768+), so a
// node restarted on its old ports does not find one taken by some outgoing
// connection's local port. It never returns the same port twice.
func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 1000; i++ {
		port := 20000 + rand.IntN(12000)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)) // gossip uses UDP too
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
}

func newTestNode(t *testing.T, id string, shards, expect, replicas int) *testNode {
	return &testNode{t: t, id: id, dir: t.TempDir(), raftPort: freePort(t), httpPort: freePort(t),
		gossipPort: freePort(t), shards: shards, expect: expect, replicas: replicas}
}

func fastGossip(c *memberlist.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 50 * time.Millisecond
	c.SuspicionMult = 2
	c.PushPullInterval = 2 * time.Second
	c.DeadNodeReclaimTime = time.Second
}

func testLogger() *slog.Logger {
	level := slog.LevelWarn + 4 // quiet unless asked
	if os.Getenv("SESSIOND_TEST_LOG") != "" {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func listenOn(t *testing.T, port int) net.Listener {
	t.Helper()
	var err error
	for i := 0; i < 50; i++ { // a just-closed port may linger briefly
		var l net.Listener
		if l, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			return l
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("listen on %d: %v", port, err)
	return nil
}

// start starts (or restarts) the node on its ports and data dir.
func (n *testNode) start() {
	t := n.t
	t.Helper()
	raftLn := listenOn(t, n.raftPort)
	httpLn := listenOn(t, n.httpPort)
	logger := testLogger().With("node", n.id)
	cfg := cluster.Config{
		NodeID: n.id, DataDir: n.dir, RaftListener: raftLn,
		RaftAdvertise: raftLn.Addr().String(), HTTPAdvertise: httpLn.Addr().String(),
		GossipBind: fmt.Sprintf("127.0.0.1:%d", n.gossipPort), Join: n.join,
		BootstrapExpect: n.expect, ShardCount: n.shards, Replicas: n.replicas,
		ShardTuning: cluster.ShardTuning{Heartbeat: 300 * time.Millisecond}, // quick elections
		Logger:      logger, TuneGossip: fastGossip,
		ReconcileInterval: 200 * time.Millisecond, BackstopInterval: time.Second,
	}
	if n.tune != nil {
		n.tune(&cfg)
	}
	node, err := cluster.Start(cfg)
	if err != nil {
		httpLn.Close()
		t.Fatalf("start %s: %v", n.id, err)
	}
	api := httpapi.DefaultConfig()
	api.Logger, api.Cluster, api.Replicas = logger, node, node
	srv := httptest.NewUnstartedServer(httpapi.New(node, api))
	srv.Listener.Close()
	srv.Listener = httpLn
	srv.Start()
	n.node, n.srv = node, srv
}

// stop closes the node gracefully; kill stops it as a crash would.
func (n *testNode) stop() {
	if n.node == nil {
		return
	}
	n.srv.Close()
	n.node.Close()
	n.node = nil
}

func (n *testNode) kill() {
	n.srv.CloseClientConnections()
	n.srv.Close()
	n.node.Kill()
	n.node = nil
}

func (n *testNode) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", n.httpPort, path)
}

// startCluster starts size founders that bootstrap together.
func startCluster(t *testing.T, size, shards int, tune ...func(*cluster.Config)) []*testNode {
	t.Helper()
	nodes := make([]*testNode, size)
	var join []string
	for i := range nodes {
		nodes[i] = newTestNode(t, fmt.Sprintf("n%d", i+1), shards, size, 3)
		join = append(join, fmt.Sprintf("127.0.0.1:%d", nodes[i].gossipPort))
	}
	for _, n := range nodes {
		n.join = join
		if len(tune) > 0 {
			n.tune = tune[0]
		}
		n.start()
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})
	for _, n := range nodes {
		waitReady(t, n)
	}
	return nodes
}

func waitReady(t *testing.T, n *testNode) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		code, _, _ := do(t, "GET", n.url("/readyz"), nil, nil)
		if code != 200 {
			return fmt.Errorf("%s /readyz = %d", n.id, code)
		}
		return nil
	})
}

// eventually polls f until it returns nil or the deadline passes.
func eventually(t *testing.T, within time.Duration, f func() error) {
	t.Helper()
	poll.Until(t, within, "condition", f)
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func do(t *testing.T, method, url string, body any, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

type message struct {
	Seq     uint64 `json:"seq"`
	ID      string `json:"id"`
	Content string `json:"content"`
}

// appendMsg appends one message with a client-chosen id and, as a client
// should, retries a 503 (leader elections and hand-offs) with the same id for
// up to two seconds. It returns the last status: 201 stored, 200 already
// stored by an earlier attempt.
func appendMsg(t *testing.T, n *testNode, session, id string) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		code, _, _ := do(t, "POST", n.url("/api/chat/session/"+session+"/messages"),
			map[string]string{"id": id, "role": "user", "content": "content of " + id}, nil)
		if code != 503 || time.Now().After(deadline) {
			return code
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stored(code int) bool { return code == 200 || code == 201 }

// messages reads a session's messages, retrying a 503 (an election or a
// leadership hand-off under way) for up to two seconds as a client would.
func messages(t *testing.T, n *testNode, session, consistency string) ([]message, int) {
	t.Helper()
	var code int
	var body []byte
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, _, body = do(t, "GET", n.url("/api/chat/session/"+session+"/messages?limit=1000&consistency="+consistency), nil, nil)
		if code != 503 || time.Now().After(deadline) {
			break
		}
	}
	var page struct{ Messages []message }
	if code == 200 {
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
	}
	return page.Messages, code
}

type clusterView struct {
	Node    string `json:"node"`
	Members []cluster.MemberStatus
	Shards  []struct {
		shard.Status
		Local     bool          `json:"local"`
		Desired   []string      `json:"desired"`
		Converged bool          `json:"converged"`
		Move      *cluster.Move `json:"move"`
	}
}

func view(t *testing.T, n *testNode) clusterView {
	t.Helper()
	code, _, body := do(t, "GET", n.url("/v1/cluster"), nil, nil)
	var v clusterView
	if code != 200 || json.Unmarshal(body, &v) != nil {
		t.Fatalf("GET /v1/cluster on %s = %d %s", n.id, code, body)
	}
	return v
}

func ids(ms []message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%d:%s ", m.Seq, m.ID)
	}
	return b.String()
}
