package cluster_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/sessiond/sessiond/cluster"
)

func newGossipKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// withGossipKeys returns a test node tuning that gives every node keys.
func withGossipKeys(keys ...[]byte) func(*cluster.Config) {
	return func(c *cluster.Config) { c.GossipKeys = keys }
}

// syncBuffer collects a node's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// intruder is a bare memberlist node that gossips valid sessiond metadata
// (an unformed node), so that if it got in, the cluster would list it.
type intruder struct {
	ml   *memberlist.Memberlist
	meta []byte
}

func (i *intruder) NodeMeta(int) []byte                    { return i.meta }
func (i *intruder) NotifyMsg([]byte)                       {}
func (i *intruder) GetBroadcasts(int, int) [][]byte        { return nil }
func (i *intruder) LocalState(bool) []byte                 { return nil }
func (i *intruder) MergeRemoteState(buf []byte, join bool) {}
func (i *intruder) members() int                           { return i.ml.NumMembers() }
func (i *intruder) join(addr string) (int, error)          { return i.ml.Join([]string{addr}) }

// startIntruder starts a bare memberlist on loopback with sessiond's label
// (labels are not secret) and the given keys (none for plain gossip).
func startIntruder(t *testing.T, name string, shards int, keys ...[]byte) *intruder {
	t.Helper()
	meta := cluster.Meta{NodeID: name, RaftAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:1",
		Incarnation: 1, ShardCount: shards, BootstrapExpect: 1}
	b, err := meta.Encode()
	if err != nil {
		t.Fatal(err)
	}
	in := &intruder{meta: b}
	mc := memberlist.DefaultLANConfig()
	fastGossip(mc)
	mc.Name, mc.BindAddr, mc.BindPort = name, "127.0.0.1", freePort(t)
	mc.Label = cluster.DefaultGossipLabel
	mc.Delegate = in
	mc.Logger = log.New(io.Discard, "", 0)
	if len(keys) > 0 {
		kr, err := memberlist.NewKeyring(keys[1:], keys[0])
		if err != nil {
			t.Fatal(err)
		}
		mc.Keyring = kr
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	in.ml = ml
	t.Cleanup(func() { ml.Shutdown() })
	return in
}

// listed reports whether node id is in n's member list.
func listed(n *testNode, id string) bool {
	for _, m := range n.node.Members() {
		if m.ID == id {
			return true
		}
	}
	return false
}

// aliveIn reports whether n lists node id as alive.
func aliveIn(n *testNode, id string) bool {
	for _, m := range n.node.Members() {
		if m.ID == id {
			return m.State == cluster.StateAlive
		}
	}
	return false
}

// neverListed checks for a while that no node of nodes lists id.
func neverListed(t *testing.T, nodes []*testNode, id string, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, n := range nodes {
			if listed(n, id) {
				t.Fatalf("%s lists %s as a member", n.id, id)
			}
		}
	}
}

func TestGossipKeysAreParsedFromBase64AndBadOnesAreNamed(t *testing.T) {
	k16, k32 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 32)
	b64 := base64.StdEncoding.EncodeToString
	keys, err := cluster.ParseGossipKeys(" " + b64(k32) + " , " + b64(k16))
	if err != nil || len(keys) != 2 || !bytes.Equal(keys[0], k32) || !bytes.Equal(keys[1], k16) {
		t.Fatalf("ParseGossipKeys = %v, %v", keys, err)
	}
	if keys, err := cluster.ParseGossipKeys("  "); err != nil || keys != nil {
		t.Fatalf("empty list = %v, %v; want no keys", keys, err)
	}
	for _, c := range []struct{ in, want string }{
		{b64(k32) + ",not base64!", "gossip key 2 of 2 is not valid base64"},
		{b64(k32) + "," + b64(make([]byte, 20)), "gossip key 2 of 2 is 20 bytes; a gossip key must be 16, 24 or 32 bytes"},
		{b64(k32) + ",," + b64(k16), "gossip key 2 of 3 is empty"},
		{b64(k16) + "," + b64(k16), "gossip key 2 of 2 is the same as key 1"},
	} {
		_, err := cluster.ParseGossipKeys(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseGossipKeys(%q) = %v, want %q", c.in, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), b64(k16)) {
			t.Errorf("error reveals a key: %v", err)
		}
	}
}

func TestStartRefusesInvalidGossipKeysAndLabels(t *testing.T) {
	for _, c := range []struct {
		name  string
		tune  func(*cluster.Config)
		wants string
	}{
		{"short key", func(c *cluster.Config) { c.GossipKeys = [][]byte{make([]byte, 8)} }, "gossip key 1 of 1 is 8 bytes"},
		{"bad secondary", func(c *cluster.Config) { c.GossipKeys = [][]byte{make([]byte, 32), make([]byte, 33)} }, "gossip key 2 of 2 is 33 bytes"},
		{"label", func(c *cluster.Config) { c.GossipLabel = strings.Repeat("l", 256) }, "gossip label is 256 bytes"},
	} {
		cfg := cluster.Config{NodeID: "n1", DataDir: t.TempDir(), ShardCount: 1, Replicas: 1, BootstrapExpect: 1,
			Logger: testLogger()}
		c.tune(&cfg)
		if _, err := cluster.Start(cfg); err == nil || !strings.Contains(err.Error(), c.wants) {
			t.Errorf("%s: Start = %v, want %q", c.name, err, c.wants)
		}
	}
}

// TestGossipWithoutTheClusterKeyCannotJoin attacks a keyed cluster with
// nodes that do not hold its key: bare memberlist nodes and sessiond nodes,
// with no key and with a wrong one. None of them gets into the member list,
// and none of them learns of the cluster's nodes. A bare node with the key
// shows that the check would see one that got in.
func TestGossipWithoutTheClusterKeyCannotJoin(t *testing.T) {
	key := newGossipKey(t)
	nodes := startCluster(t, 2, 2, withGossipKeys(key))
	seed := fmt.Sprintf("127.0.0.1:%d", nodes[0].gossipPort)

	t.Run("bare memberlist with the key gets in (control)", func(t *testing.T) {
		in := startIntruder(t, "insider", 2, key)
		if _, err := in.join(seed); err != nil {
			t.Fatalf("join with the key: %v", err)
		}
		eventually(t, 10*time.Second, func() error {
			for _, n := range nodes {
				if !listed(n, "insider") {
					return fmt.Errorf("%s does not list the node holding the key", n.id)
				}
			}
			return nil
		})
	})

	for _, c := range []struct {
		name string
		keys [][]byte
	}{
		{"bare memberlist without a key", nil},
		{"bare memberlist with a wrong key", [][]byte{newGossipKey(t)}},
		{"bare memberlist with a wrong key and the right length", [][]byte{newGossipKey(t)[:16]}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := startIntruder(t, "intruder", 2, c.keys...)
			if joined, err := in.join(seed); err == nil || joined != 0 {
				t.Fatalf("join = %d, %v; want refused", joined, err)
			}
			neverListed(t, nodes, "intruder", 3*time.Second)
			if got := in.members(); got != 1 {
				t.Fatalf("the intruder learned of %d members", got-1)
			}
		})
	}

	for _, c := range []struct {
		name string
		keys [][]byte
	}{
		{"sessiond node without a key", nil},
		{"sessiond node with a wrong key", [][]byte{newGossipKey(t)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// It expects a second founder, so it keeps looking for the
			// cluster instead of forming one of its own.
			x := newTestNode(t, "intruder", 2, 2, 3)
			x.join = []string{seed}
			x.tune = func(cfg *cluster.Config) { cfg.GossipKeys = c.keys }
			x.start()
			defer x.stop()
			neverListed(t, nodes, "intruder", 4*time.Second)
			if ms := x.node.Members(); len(ms) != 1 {
				t.Fatalf("the intruder learned of the cluster: %+v", ms)
			}
			select {
			case <-x.node.Formed():
				t.Fatal("the intruder formed")
			default:
			}
		})
	}
}

// TestGossipKeysRotateByRollingRestarts rotates a two-node cluster from one
// key to another a node at a time, through every mix of keyrings a rolling
// rotation passes through — among them [old, new] next to [new, old], two
// primaries at once — and checks after every restart that the nodes gossip
// (the restarted node learns of the other only through a join the other
// decrypted and answered). At the end the old key no longer gets in.
func TestGossipKeysRotateByRollingRestarts(t *testing.T) {
	oldKey, newKey := newGossipKey(t), newGossipKey(t)
	keys := map[string][][]byte{"n1": {oldKey}, "n2": {oldKey}}
	nodes := startCluster(t, 2, 2, func(c *cluster.Config) { c.GossipKeys = keys[c.NodeID] })
	for _, stage := range []struct {
		name string
		keys [][]byte
	}{
		{"add the new key as a secondary", [][]byte{oldKey, newKey}},
		{"make the new key primary", [][]byte{newKey, oldKey}},
		{"drop the old key", [][]byte{newKey}},
	} {
		for i, n := range nodes {
			other := nodes[1-i]
			t.Logf("%s: restarting %s with keyring of %d; %s has %d", stage.name, n.id, len(stage.keys), other.id, len(keys[other.id]))
			keys[n.id] = stage.keys
			n.stop()
			n.start()
			eventually(t, 20*time.Second, func() error {
				if !aliveIn(n, other.id) || !aliveIn(other, n.id) {
					return fmt.Errorf("%s: %s and %s do not see each other alive", stage.name, n.id, other.id)
				}
				return nil
			})
			waitReady(t, n)
			// Probes keep succeeding, not only the join.
			time.Sleep(time.Second)
			if !aliveIn(n, other.id) || !aliveIn(other, n.id) {
				t.Fatalf("%s: gossip between %s and %s broke after the join", stage.name, n.id, other.id)
			}
		}
	}
	if code := appendMsg(t, nodes[0], "rotated", "m1"); !stored(code) {
		t.Fatalf("append after rotation = %d", code)
	}
	in := startIntruder(t, "old-key-holder", 2, oldKey)
	if joined, err := in.join(fmt.Sprintf("127.0.0.1:%d", nodes[1].gossipPort)); err == nil || joined != 0 {
		t.Fatalf("join with the dropped key = %d, %v; want refused", joined, err)
	}
	neverListed(t, nodes, "old-key-holder", 2*time.Second)
}

// TestAMemberOfAnotherClusterIsIgnored makes a formed single-node cluster
// (x1) join the gossip of a two-node cluster, with the same gossip key. x1
// gossips that it leads every shard and would win some shards' placement,
// yet the cluster never places a replica on it, never makes it a voter,
// never routes a request to it and never lists it, and each node warns
// about it once.
func TestAMemberOfAnotherClusterIsIgnored(t *testing.T) {
	const shards = 8
	key := newGossipKey(t)
	logs := map[string]*syncBuffer{}
	logTo := func(c *cluster.Config) {
		c.GossipKeys = [][]byte{key}
		buf := &syncBuffer{}
		logs[c.NodeID] = buf
		c.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}

	// Cluster A: two nodes, one replica per shard, so each node routes
	// half the shards to the other by the leadership bits gossip carries.
	a := []*testNode{newTestNode(t, "n1", shards, 2, 1), newTestNode(t, "n2", shards, 2, 1)}
	join := []string{fmt.Sprintf("127.0.0.1:%d", a[0].gossipPort), fmt.Sprintf("127.0.0.1:%d", a[1].gossipPort)}
	for _, n := range a {
		n.join, n.tune = join, logTo
		n.start()
	}
	t.Cleanup(func() {
		for _, n := range a {
			n.stop()
		}
	})
	for _, n := range a {
		waitReady(t, n)
	}

	// Cluster B: x1 alone, formed on its own, then restarted (keeping its
	// identity) with A's nodes as seeds.
	x := newTestNode(t, "x1", shards, 1, 1)
	x.tune = logTo
	x.start()
	waitReady(t, x)
	x.stop()
	x.join = join
	x.start()
	t.Cleanup(x.stop)
	waitReady(t, x)

	// Gossip reaches x1: each node of A sees it and warns.
	warning := "member of another cluster"
	eventually(t, 15*time.Second, func() error {
		for _, n := range a {
			if l := logs[n.id].String(); !strings.Contains(l, warning) || !strings.Contains(l, "member=x1") {
				return fmt.Errorf("%s has not warned about x1:\n%s", n.id, l)
			}
		}
		if l := logs["x1"].String(); !strings.Contains(l, warning) {
			return fmt.Errorf("x1 has not warned about cluster A:\n%s", l)
		}
		return nil
	})

	sessionOn := map[uint32]string{}
	for i := 0; len(sessionOn) < shards; i++ {
		id := fmt.Sprintf("s%d", i)
		if s := a[0].node.ShardFor(id); sessionOn[s] == "" {
			sessionOn[s] = id
		}
	}
	inA := func(id string) bool { return id == "n1" || id == "n2" }
	// Several reconcile rounds (200ms) and balance rounds (1s+).
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, n := range a {
			v := view(t, n)
			for _, m := range v.Members {
				if !inA(m.ID) {
					t.Fatalf("%s lists %s as a member", n.id, m.ID)
				}
			}
			for _, s := range v.Shards {
				for _, r := range s.Replicas {
					if !inA(r.ID) {
						t.Fatalf("shard %d on %s has replica %s (%s)", s.ID, n.id, r.ID, r.Suffrage)
					}
				}
				for _, d := range s.Desired {
					if !inA(d) {
						t.Fatalf("%s wants shard %d on %s", n.id, s.ID, d)
					}
				}
			}
			for s := uint32(0); s < shards; s++ {
				if id, _, _ := n.node.Leader(s); id != "" && !inA(id) {
					t.Fatalf("%s routes shard %d to %s", n.id, s, id)
				}
			}
		}
		for s, session := range sessionOn {
			for _, n := range a {
				code, h, body := do(t, "GET", n.url("/v1/sessions/"+session+"/owner"), nil, nil)
				if code == 503 {
					continue // an election; the next round asks again
				}
				if code != 200 || !inA(h.Get("X-Sessiond-Node")) || strings.Contains(string(body), "x1") {
					t.Fatalf("owner of shard %d via %s = %d, served by %q: %s", s, n.id, code, h.Get("X-Sessiond-Node"), body)
				}
			}
		}
	}
	for s, session := range sessionOn {
		for _, n := range a {
			code, h, _ := do(t, "POST", n.url("/api/chat/session/"+session+"/messages"),
				map[string]string{"id": "m-" + n.id, "role": "user", "content": "hi"}, nil)
			if !stored(code) || !inA(h.Get("X-Sessiond-Node")) {
				t.Fatalf("append to shard %d via %s = %d, served by %q", s, n.id, code, h.Get("X-Sessiond-Node"))
			}
		}
	}
	// x1 keeps its own cluster to itself too.
	for _, s := range view(t, x).Shards {
		if len(s.Replicas) != 1 || s.Replicas[0].ID != "x1" {
			t.Fatalf("x1's shard %d has replicas %+v", s.ID, s.Replicas)
		}
	}
	for _, n := range a {
		if c := strings.Count(logs[n.id].String(), warning); c != 1 {
			t.Fatalf("%s warned %d times about x1, want once:\n%s", n.id, c, logs[n.id].String())
		}
	}
}
