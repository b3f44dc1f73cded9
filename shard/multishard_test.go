package shard_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// TestTwoShardsShareOneMuxPortAndReplicateConcurrently runs two raft groups
// on three hosts, each host with one raft port, writes to both groups at once
// and checks that every replica of each group ends with the same state, and
// that neither group saw the other's writes.
func TestTwoShardsShareOneMuxPortAndReplicateConcurrently(t *testing.T) {
	c := makeCluster(t, 3, 2, 0, 1)
	for _, h := range c.hosts {
		if h.host.RaftAddr() != h.host.Self().Address || string(h.host.RaftAddr()) != h.addr {
			t.Fatalf("%s: raft address %s, self %s, listener %s", h.id, h.host.RaftAddr(), h.host.Self().Address, h.addr)
		}
	}

	const writers, perWriter = 8, 25
	runConcurrently(2*writers, func(i int) {
		s := uint32(i % 2)
		session := fmt.Sprintf("shard%d-writer%d", s, i/2)
		for m := 1; m <= perWriter; m++ {
			res, err := c.apply(s, appendCmd(session, fmt.Sprintf("m%d", m)))
			if err != nil {
				t.Errorf("append %s/m%d: %v", session, m, err)
				return
			}
			if res.Status != fsm.StatusOK || res.Messages[0].Seq != uint64(m) {
				t.Errorf("append %s/m%d: %v seq %d", session, m, res.Status, res.Messages[0].Seq)
				return
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	for _, s := range c.shards {
		index := c.converged(s)
		rs := c.replicas(s)
		if len(rs) != 3 {
			t.Fatalf("shard %d has %d replicas", s, len(rs))
		}
		for _, r := range rs {
			f := r.FSM()
			if f.Len() != writers {
				t.Errorf("shard %d replica: %d sessions, want %d", s, f.Len(), writers)
			}
			for w := 0; w < writers; w++ {
				mine := fmt.Sprintf("shard%d-writer%d", s, w)
				other := fmt.Sprintf("shard%d-writer%d", 1-s, w)
				if sess, ok := f.Get(mine); !ok || sess.MessageCount() != perWriter {
					t.Errorf("shard %d: session %s missing or short", s, mine)
				}
				if _, ok := f.Get(other); ok {
					t.Errorf("shard %d holds %s, written to the other shard", s, other)
				}
			}
			st := r.Status()
			if st.AppliedIndex != index || len(st.Replicas) != 3 {
				t.Errorf("shard %d status %+v", s, st)
			}
		}
	}
	for _, h := range c.hosts {
		if r := h.host.Mux().Rejected(); r != 0 {
			t.Errorf("%s rejected %d raft connections between members", h.id, r)
		}
	}

	// Strangers on the same port are refused while the groups keep running.
	target := c.hosts[0]
	before := target.host.Mux().Rejected()
	for i, b := range [][]byte{
		preamble(testClusterID^0xff, 0), // another cluster
		preamble(testClusterID, 5),      // a shard this host does not run
		[]byte("not a raft peer!"),      // garbage
	} {
		conn := dialRaw(t, target.addr, b, "")
		if err := closedByPeer(conn); err != nil {
			t.Fatalf("stranger %d: %v", i, err)
		}
	}
	waitRejected(t, target.host.Mux(), before+3)
	for _, s := range c.shards {
		if _, err := c.apply(s, appendCmd("after-strangers", "m1")); err != nil {
			t.Fatalf("shard %d after strangers: %v", s, err)
		}
		c.converged(s)
	}
}

// TestHostsOfDifferentClustersNeverFormAGroup bootstraps one shard on two
// hosts that carry different cluster ids: every raft connection between
// them is refused, so no vote is ever granted and neither becomes leader.
func TestHostsOfDifferentClustersNeverFormAGroup(t *testing.T) {
	a := newTestHost(t, "a", 1, nil)
	b := newTestHost(t, "b", 1, func(c *shard.HostConfig) { c.ClusterID = testClusterID + 1 })
	voters := []raft.Server{a.host.Self(), b.host.Self()}
	ra, rb := a.open(0), b.open(0)
	for _, r := range []*shard.Shard{ra, rb} {
		if err := r.Bootstrap(voters); err != nil {
			t.Fatal(err)
		}
	}
	// Each host campaigns repeatedly; every attempt is refused by the other.
	waitRejected(t, a.host.Mux(), 3)
	waitRejected(t, b.host.Mux(), 3)
	for _, r := range []*shard.Shard{ra, rb} {
		if r.IsLeader() {
			t.Fatalf("a leader was elected across clusters: %+v", r.Status())
		}
		if st := r.Status(); st.CommitIndex != 0 || st.AppliedIndex != 0 {
			t.Fatalf("replica committed entries across clusters: %+v", st)
		}
	}
}

// TestHostOpensOnlyShardsInRange checks the host never runs a replica for a
// shard id the cluster does not have, and that opening twice is idempotent.
func TestHostOpensOnlyShardsInRange(t *testing.T) {
	h := newTestHost(t, "n1", 4, nil)
	if _, err := h.host.OpenShard(4); err == nil {
		t.Fatal("OpenShard(4) succeeded in a cluster of 4 shards")
	}
	s2 := h.open(2)
	if again := h.open(2); again != s2 {
		t.Fatal("opening shard 2 twice returned two replicas")
	}
	h.open(0)
	var ids []uint32
	for _, s := range h.host.Shards() {
		ids = append(ids, s.ID())
	}
	if !slices.Equal(ids, []uint32{0, 2}) {
		t.Fatalf("Shards() = %v, want [0 2]", ids)
	}
	if h.host.Shard(1) != nil {
		t.Fatal("shard 1 was never opened but is hosted")
	}
	if st, ok := h.host.ShardStatus(1); ok {
		t.Fatalf("status of unhosted shard: %+v", st)
	}
	existing, err := h.host.ExistingShards()
	if err != nil || !slices.Equal(existing, []uint32{0, 2}) {
		t.Fatalf("ExistingShards() = %v, %v; want [0 2]", existing, err)
	}
	// Nothing leads before bootstrap: the host is not ready.
	if h.host.Ready() {
		t.Fatal("host ready with unbootstrapped replicas")
	}
	ln := listen(t, "")
	defer ln.Close()
	if _, err := shard.NewHost(shard.HostConfig{ShardCount: 0, Listener: ln, Advertise: ln.Addr().String(), Logger: testLogger()}); err == nil {
		t.Fatal("NewHost accepted 0 shards")
	}
	if _, err := shard.NewHost(shard.HostConfig{ShardCount: 1, Listener: ln, Advertise: "no-port", Logger: testLogger()}); err == nil {
		t.Fatal("NewHost accepted an advertise address without a port")
	}
}
