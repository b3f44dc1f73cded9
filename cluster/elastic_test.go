package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/cluster"
)

const elasticShards = 8

// liveNodes is a concurrency-safe list of the nodes currently up.
type liveNodes struct {
	mu    sync.Mutex
	nodes []*testNode
}

func (l *liveNodes) get() []*testNode {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*testNode(nil), l.nodes...)
}

func (l *liveNodes) set(nodes []*testNode) {
	l.mu.Lock()
	l.nodes = nodes
	l.mu.Unlock()
}

func addNode(t *testing.T, id string, seeds []*testNode, tune func(*cluster.Config)) *testNode {
	n := newTestNode(t, id, elasticShards, 3, 3)
	for _, s := range seeds {
		n.join = append(n.join, fmt.Sprintf("127.0.0.1:%d", s.gossipPort))
	}
	n.tune = tune
	n.start()
	t.Cleanup(n.stop)
	waitReady(t, n)
	return n
}

// TestScaleOutAndInUnderLoadLosesNoAcknowledgedAppend grows a 3-node
// cluster to 5 under a continuous append workload, waits until every shard
// sits on its placed nodes with leadership balanced, then drains two nodes
// again: no acknowledged append is lost or duplicated, drained nodes end
// with no replica and no shard data, and no shard ever has two leaders in
// one term.
func TestScaleOutAndInUnderLoadLosesNoAcknowledgedAppend(t *testing.T) {
	founders := startCluster(t, 3, elasticShards)
	live := &liveNodes{nodes: founders}
	mon := monitorOwnership(t, live.get)
	load := startWorkload(t, founders, 24, 6)

	n4 := addNode(t, "n4", founders, nil)
	n5 := addNode(t, "n5", founders, nil)
	all := append(append([]*testNode{}, founders...), n4, n5)
	live.set(all)
	load.setNodes(all)
	waitConverged(t, all, elasticShards, 90*time.Second)
	for _, n := range []*testNode{n4, n5} {
		if got := len(n.node.Host().Shards()); got == 0 {
			t.Fatalf("%s holds no replica after scale-out", n.id)
		}
	}

	// Scale in: drain n4 and n5 while the load runs through the founders.
	load.setNodes(founders)
	var wg sync.WaitGroup
	for _, n := range []*testNode{n4, n5} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			if err := n.node.Drain(ctx); err != nil {
				t.Errorf("drain %s: %v", n.id, err)
			}
		}()
	}
	wg.Wait()
	for _, n := range []*testNode{n4, n5} {
		if got := len(n.node.Host().Shards()); got != 0 {
			t.Fatalf("%s still holds %d replicas after draining", n.id, got)
		}
		entries, _ := os.ReadDir(filepath.Join(n.dir, "shards"))
		if len(entries) != 0 {
			t.Fatalf("%s kept shard data after draining: %d dirs", n.id, len(entries))
		}
		n.stop()
	}
	live.set(founders)
	waitConverged(t, founders, elasticShards, 60*time.Second)
	acked := load.finish()
	verifyAcked(t, founders[0], acked)
	mon.check(t)
}

// TestDeadNodeKeepsItsReplicasWithinTheGracePeriod kills one of five nodes
// and brings it back before --dead-node-grace: no replica moves.
func TestDeadNodeKeepsItsReplicasWithinTheGracePeriod(t *testing.T) {
	long := func(c *cluster.Config) { c.DeadNodeGrace = time.Minute }
	nodes := startCluster(t, 5, elasticShards, long)
	waitConverged(t, nodes, elasticShards, 60*time.Second)
	before := replicaSets(t, nodes)
	victim := nodes[4]
	victim.kill()
	eventually(t, 15*time.Second, func() error { // memberlist declares it dead
		for _, m := range view(t, nodes[0]).Members {
			if m.ID == victim.id && m.State == cluster.StateDead {
				return nil
			}
		}
		return fmt.Errorf("%s not declared dead yet", victim.id)
	})
	time.Sleep(time.Second) // a few reconcile rounds with the node dead
	victim.start()
	waitReady(t, victim)
	waitConverged(t, nodes, elasticShards, 30*time.Second)
	after := replicaSets(t, nodes)
	for s, set := range before {
		if after[s] != set {
			t.Fatalf("shard %d moved within the grace period: %s → %s", s, set, after[s])
		}
	}
}

// TestDeadNodeReplicasArePlacedElsewhereAfterTheGracePeriod kills one of
// five nodes for good: after the grace period its replicas live on the other
// four and every acknowledged write is still there.
func TestDeadNodeReplicasArePlacedElsewhereAfterTheGracePeriod(t *testing.T) {
	short := func(c *cluster.Config) { c.DeadNodeGrace = 2 * time.Second }
	nodes := startCluster(t, 5, elasticShards, short)
	waitConverged(t, nodes, elasticShards, 60*time.Second)
	survivors := nodes[:4]
	live := &liveNodes{nodes: survivors}
	mon := monitorOwnership(t, live.get)
	load := startWorkload(t, survivors, 16, 4)
	nodes[4].kill()
	eventually(t, 90*time.Second, func() error {
		sets := replicaSets(t, survivors)
		for s, set := range sets {
			if strings.Contains(set, "n5/") {
				return fmt.Errorf("shard %d still has a replica on the dead node: %s", s, set)
			}
		}
		if len(sets) != elasticShards {
			return fmt.Errorf("%d of %d shards have a leader", len(sets), elasticShards)
		}
		return nil
	})
	waitConverged(t, survivors, elasticShards, 60*time.Second)
	acked := load.finish()
	verifyAcked(t, survivors[1], acked)
	mon.check(t)
}

// replicaSets returns each shard's voters as its leader reports them.
func replicaSets(t *testing.T, nodes []*testNode) map[uint32]string {
	t.Helper()
	out := map[uint32]string{}
	for _, n := range nodes {
		for _, s := range view(t, n).Shards {
			if s.State == "Leader" {
				ids := ""
				for _, r := range s.Replicas {
					ids += r.ID + "/" + r.Suffrage + " "
				}
				out[s.ID] = ids
			}
		}
	}
	return out
}
