package shard_test

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/shard"
)

// TestHeartbeatsOfAllShardsTravelTogether: with many shards led by one node,
// its heartbeats to each follower node go out together, several per node
// RPC, and leadership stays put while the cluster idles.
func TestHeartbeatsOfAllShardsTravelTogether(t *testing.T) {
	const shards = 16
	ids := make([]uint32, shards)
	for i := range ids {
		ids[i] = uint32(i)
	}
	c := makeCluster(t, 3, shards, ids...)
	terms := map[uint32]uint64{}
	for _, id := range ids {
		terms[id] = c.leader(id).Status().Term
	}
	var batches0, beats0 uint64
	for _, h := range c.hosts {
		b, n := h.host.HeartbeatStats()
		batches0, beats0 = batches0+b, beats0+n
	}
	time.Sleep(2 * time.Second)
	var batches, beats uint64
	for _, h := range c.hosts {
		b, n := h.host.HeartbeatStats()
		batches, beats = batches+b, beats+n
	}
	batches, beats = batches-batches0, beats-beats0
	t.Logf("%d heartbeats in %d node RPCs over 2s (%.1f per RPC)", beats, batches, float64(beats)/float64(batches))
	if beats == 0 {
		t.Fatal("no heartbeat went through the node's heartbeat sender")
	}
	if float64(beats) < 2*float64(batches) {
		t.Fatalf("%d heartbeats in %d RPCs: they were not sent together", beats, batches)
	}
	for _, id := range ids {
		if got := c.leader(id).Status().Term; got != terms[id] {
			t.Fatalf("shard %d changed term from %d to %d while idle", id, terms[id], got)
		}
	}
}

// TestLeaderReportsAFollowerThatFallsBehind: while one follower is cut off
// and the leader keeps writing, the leader's status shows that follower's
// last index standing still and for how long; once it is back it catches
// up and the stall clears.
func TestLeaderReportsAFollowerThatFallsBehind(t *testing.T) {
	wires := newLinks(t)
	c := makeClusterWith(t, 3, 1, func(cfg *shard.HostConfig) { wires.route(cfg) }, 0)
	lead := c.leader(0)
	victim := c.hostOf(c.followers(0, lead)[0])
	replica := func() shard.Replica {
		for _, r := range lead.Status().Replicas {
			if r.ID == victim.id {
				return r
			}
		}
		t.Fatalf("no replica %s in the leader's status", victim.id)
		return shard.Replica{}
	}
	mustAppend(t, lead, "lag", "m0")
	eventually(t, 5*time.Second, func() error {
		if r := replica(); r.LastIndex < lead.Status().LastIndex || r.StalledSeconds != 0 {
			return fmt.Errorf("before the cut: %+v, leader at %d", r, lead.Status().LastIndex)
		}
		return nil
	})
	wires.pause(victim.id)
	for i := 1; i <= 20; i++ {
		mustAppend(t, lead, "lag", fmt.Sprintf("m%d", i))
	}
	time.Sleep(1500 * time.Millisecond)
	r := replica()
	if r.LastIndex >= lead.Status().LastIndex || r.StalledSeconds < 1 {
		t.Fatalf("cut-off follower reported as %+v, leader at %d", r, lead.Status().LastIndex)
	}
	t.Logf("cut off: follower at %d, leader at %d, stalled %.1fs", r.LastIndex, lead.Status().LastIndex, r.StalledSeconds)
	wires.resume(victim.id)
	eventually(t, 10*time.Second, func() error {
		if r := replica(); r.LastIndex < lead.Status().LastIndex || r.StalledSeconds != 0 {
			return fmt.Errorf("after the cut: %+v, leader at %d", r, lead.Status().LastIndex)
		}
		return nil
	})
}

// TestNodeRPCToAPeerThatStopsReadingFails: a peer that accepts a node RPC
// connection but never reads from it must not hold a caller forever: the
// write times out, the call fails, and the next call dials afresh.
func TestNodeRPCToAPeerThatStopsReadingFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // accepted, never read: a stopped peer
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	h := newTestHost(t, "caller", 1, nil)
	big := make([]byte, 8<<20) // more than the socket buffers hold
	done := make(chan error, 1)
	go func() { done <- shard.CallNode(h.host, ln.Addr().String(), big) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a call to a peer that never reads succeeded")
		}
		t.Logf("call failed as it should: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("a call to a peer that never reads still blocks after 20s")
	}
}

// TestLeadershipIsNotMovedToAFollowerFarBehind: a transfer to a follower
// that is cut off or far behind is refused at once, instead of raft holding
// every write of the shard while it tries to catch the target up; once the
// follower has caught up the transfer goes through.
func TestLeadershipIsNotMovedToAFollowerFarBehind(t *testing.T) {
	wires := newLinks(t)
	c := makeClusterWith(t, 3, 1, func(cfg *shard.HostConfig) { wires.route(cfg) }, 0)
	lead := c.leader(0)
	target := c.hostOf(c.followers(0, lead)[0])
	wires.pause(target.id)
	for i := 0; i < 300; i++ {
		mustAppend(t, lead, "behind", fmt.Sprintf("m%d", i))
	}
	if err := lead.TransferLeadership(target.id, string(target.host.RaftAddr())); err == nil {
		t.Fatal("leadership moved to a follower that is cut off and 300 entries behind")
	}
	wires.resume(target.id)
	eventually(t, 15*time.Second, func() error {
		return lead.TransferLeadership(target.id, string(target.host.RaftAddr()))
	})
	if got := c.leader(0); c.hostOf(got).id != target.id {
		t.Fatalf("leader is %s, want %s", c.hostOf(got).id, target.id)
	}
}
