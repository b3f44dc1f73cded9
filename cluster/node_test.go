package cluster_test

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/cluster"
)

// TestEverySessionIsServedByEveryNodeWithOneAgreedOwner writes 300 sessions
// through all three nodes and reads every one back through every node.
func TestEverySessionIsServedByEveryNodeWithOneAgreedOwner(t *testing.T) {
	nodes := startCluster(t, 3, 8)
	const sessions = 300
	for i := 0; i < sessions; i++ {
		n := nodes[i%3]
		if code := appendMsg(t, n, fmt.Sprintf("s%d", i), "m1"); !stored(code) {
			t.Fatalf("append s%d via %s = %d", i, n.id, code)
		}
	}
	for i := 0; i < sessions; i++ {
		session := fmt.Sprintf("s%d", i)
		for _, n := range nodes {
			msgs, code := messages(t, n, session, "linearizable")
			if code != 200 || len(msgs) != 1 || msgs[0].ID != "m1" {
				t.Fatalf("read %s via %s = %d %v", session, n.id, code, msgs)
			}
		}
		// Every node names the same owner once leadership has settled (the
		// balancer may still be handing shards over right after bootstrap).
		eventually(t, 10*time.Second, func() error {
			var owner string
			for _, n := range nodes {
				_, _, body := do(t, "GET", n.url("/v1/sessions/"+session+"/owner"), nil, nil)
				if owner == "" {
					owner = string(body)
				} else if string(body) != owner {
					return fmt.Errorf("owners disagree for %s: %s vs %s", session, owner, body)
				}
			}
			return nil
		})
	}
}

// TestEveryShardHasThreeVotersOneLeaderAndLeadersAreSpread checks the
// bootstrap placement and the leader balancer.
func TestEveryShardHasThreeVotersOneLeaderAndLeadersAreSpread(t *testing.T) {
	const shards = 8
	nodes := startCluster(t, 3, shards)
	eventually(t, 30*time.Second, func() error {
		led := map[string]int{}
		for _, n := range nodes {
			for _, s := range view(t, n).Shards {
				if !s.Local {
					return fmt.Errorf("%s has no replica of shard %d", n.id, s.ID)
				}
				voters := 0
				for _, r := range s.Replicas {
					if r.Suffrage == "voter" {
						voters++
					}
				}
				if voters != 3 {
					return fmt.Errorf("shard %d has %d voters on %s", s.ID, voters, n.id)
				}
				if s.State == "Leader" {
					led[n.id]++
				}
			}
		}
		total, limit := 0, (shards+2)/3
		for id, c := range led {
			total += c
			if c > limit {
				return fmt.Errorf("%s leads %d shards, more than %d", id, c, limit)
			}
		}
		if total != shards {
			return fmt.Errorf("%d leaders for %d shards: %v", total, shards, led)
		}
		return nil
	})
}

// TestLeaderFailureLosesNoAcknowledgedWriteAndTheNodeCatchesUp kills the node
// leading the most shards without a graceful leave.
func TestLeaderFailureLosesNoAcknowledgedWriteAndTheNodeCatchesUp(t *testing.T) {
	nodes := startCluster(t, 3, 8)
	const sessions = 60
	for i := 0; i < sessions; i++ {
		if code := appendMsg(t, nodes[i%3], fmt.Sprintf("f%d", i), "before"); !stored(code) {
			t.Fatalf("append = %d", code)
		}
	}
	victim := nodes[0]
	most := -1
	for _, n := range nodes {
		c := 0
		for _, s := range view(t, n).Shards {
			if s.State == "Leader" {
				c++
			}
		}
		if c > most {
			victim, most = n, c
		}
	}
	victim.kill()
	var survivors []*testNode
	for _, n := range nodes {
		if n != victim {
			survivors = append(survivors, n)
		}
	}
	// Within a few seconds every session is writable through both survivors.
	eventually(t, 15*time.Second, func() error {
		for i := 0; i < sessions; i++ {
			for _, n := range survivors {
				if code := appendMsg(t, n, fmt.Sprintf("f%d", i), "after-"+n.id); !stored(code) {
					return fmt.Errorf("append f%d via %s = %d", i, n.id, code)
				}
			}
		}
		return nil
	})
	for i := 0; i < sessions; i++ {
		msgs, code := messages(t, survivors[0], fmt.Sprintf("f%d", i), "linearizable")
		if code != 200 || len(msgs) < 3 || msgs[0].ID != "before" {
			t.Fatalf("f%d after failover = %d %s", i, code, ids(msgs))
		}
	}
	victim.start()
	waitReady(t, victim)
	eventually(t, 20*time.Second, func() error {
		applied := map[uint32]map[uint64]bool{}
		for _, n := range nodes {
			for _, s := range view(t, n).Shards {
				if applied[s.ID] == nil {
					applied[s.ID] = map[uint64]bool{}
				}
				applied[s.ID][s.AppliedIndex] = true
			}
		}
		for id, idx := range applied {
			if len(idx) != 1 {
				return fmt.Errorf("shard %d applied indexes differ: %v", id, idx)
			}
		}
		return nil
	})
	for i := 0; i < sessions; i++ {
		msgs, _ := messages(t, victim, fmt.Sprintf("f%d", i), "stale")
		if len(msgs) < 3 || msgs[0].ID != "before" {
			t.Fatalf("restarted node's copy of f%d: %s", i, ids(msgs))
		}
	}
}

// TestShardCountMismatchIsRefused starts a node with another --shards next to
// a formed cluster: it must refuse to join.
func TestShardCountMismatchIsRefused(t *testing.T) {
	nodes := startCluster(t, 3, 8)
	odd := newTestNode(t, "n4", 16, 3, 3)
	odd.join = []string{fmt.Sprintf("127.0.0.1:%d", nodes[0].gossipPort)}
	odd.start()
	defer odd.stop()
	select {
	case err := <-odd.node.Fatal():
		t.Logf("refused as expected: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("a node with another shard count joined the cluster")
	}
	if _, err := os.Stat(odd.dir + "/cluster.json"); err == nil {
		t.Fatal("the refused node persisted a cluster identity")
	}
}

// TestLateNodeJoinsInsteadOfBootstrapping starts a fourth node with
// --bootstrap-expect 3 after the cluster formed: it joins, holds no replica
// and serves every session by forwarding.
func TestLateNodeJoinsInsteadOfBootstrapping(t *testing.T) {
	nodes := startCluster(t, 3, 8)
	for i := 0; i < 20; i++ {
		if code := appendMsg(t, nodes[0], fmt.Sprintf("l%d", i), "m1"); !stored(code) {
			t.Fatalf("append = %d", code)
		}
	}
	late := newTestNode(t, "n4", 8, 3, 3)
	late.join = []string{fmt.Sprintf("127.0.0.1:%d", nodes[1].gossipPort)}
	late.start()
	defer late.stop()
	waitReady(t, late)
	// It joined rather than bootstrapped: no founders in its identity.
	// (Replicas it holds later are moved onto it by shard leaders.)
	if id, err := cluster.LoadIdentity(late.dir); err != nil || len(id.Founders) != 0 {
		t.Fatalf("late node's identity = %+v, %v; it must join, not bootstrap", id, err)
	}
	for i := 0; i < 20; i++ {
		// Shard leaders are moving replicas onto the late node meanwhile,
		// so a read may briefly meet a leadership change: retry 503s.
		eventually(t, 10*time.Second, func() error {
			msgs, code := messages(t, late, fmt.Sprintf("l%d", i), "linearizable")
			if code == 503 {
				return fmt.Errorf("l%d via late node = 503", i)
			}
			if code != 200 || len(msgs) != 1 {
				t.Fatalf("l%d via late node = %d %s", i, code, ids(msgs))
			}
			return nil
		})
		if code := appendMsg(t, late, fmt.Sprintf("l%d", i), "m2"); !stored(code) {
			t.Fatalf("append via late node = %d", code)
		}
	}
}

// TestWipedNodeRejoinsWithoutASecondGroup wipes a founder's data dir and
// restarts it while writes go on: it must join as a newcomer, never
// bootstrap, and no shard may ever have two leaders in one term.
func TestWipedNodeRejoinsWithoutASecondGroup(t *testing.T) {
	nodes := startCluster(t, 3, 8)
	var mu sync.Mutex
	leaders := map[string]string{} // "shard/term" → leader id
	var violation string
	watch := func() {
		for _, n := range nodes {
			if n.node == nil {
				continue
			}
			code, _, body := do(t, "GET", n.url("/v1/cluster"), nil, nil)
			if code != 200 {
				continue
			}
			var v clusterView
			if json.Unmarshal(body, &v) != nil {
				continue
			}
			mu.Lock()
			for _, s := range v.Shards {
				if s.State != "Leader" {
					continue
				}
				key := fmt.Sprintf("%d/%d", s.ID, s.Term)
				if prev, ok := leaders[key]; ok && prev != n.id {
					violation = fmt.Sprintf("shard %d term %d led by %s and %s", s.ID, s.Term, prev, n.id)
				}
				leaders[key] = n.id
			}
			mu.Unlock()
		}
	}
	acked := map[string][]string{} // session → acknowledged message ids
	write := func(round int) {
		for i := 0; i < 20; i++ {
			s, id := fmt.Sprintf("w%d", i), fmt.Sprintf("r%d", round)
			if stored(appendMsg(t, nodes[(i+round)%2], s, id)) {
				acked[s] = append(acked[s], id)
			}
			watch()
		}
	}
	write(0)
	wiped := nodes[2]
	wiped.kill()
	if err := os.RemoveAll(wiped.dir); err != nil {
		t.Fatal(err)
	}
	write(1)
	wiped.start()
	waitReady(t, wiped)
	write(2)
	// It joined rather than bootstrapped: no founders in its new identity.
	// (Replicas it holds later were added by shard leaders, learner first.)
	if id, err := cluster.LoadIdentity(wiped.dir); err != nil || len(id.Founders) != 0 {
		t.Fatalf("wiped node's identity = %+v, %v; it must join as a newcomer", id, err)
	}
	for s, want := range acked {
		for _, via := range nodes {
			eventually(t, 10*time.Second, func() error { // shards may still be electing
				msgs, code := messages(t, via, s, "linearizable")
				if code != 200 {
					return fmt.Errorf("%s via %s = %d", s, via.id, code)
				}
				assertAckedOnce(t, s, msgs, want)
				return nil
			})
			watch()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if violation != "" {
		t.Fatal(violation)
	}
}

// assertAckedOnce fails unless every acknowledged id is stored exactly once
// and seqs run 1..n without gaps. Unacknowledged writes may or may not be
// there: their outcome was unknown to the client.
func assertAckedOnce(t *testing.T, session string, msgs []message, acked []string) {
	t.Helper()
	seen := map[string]int{}
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Fatalf("%s: seq %d at position %d: %s", session, m.Seq, i, ids(msgs))
		}
		seen[m.ID]++
	}
	for _, id := range acked {
		if seen[id] != 1 {
			t.Fatalf("%s: acknowledged message %s stored %d times: %s", session, id, seen[id], ids(msgs))
		}
	}
}
