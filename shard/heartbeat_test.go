package shard_test

import (
	"testing"
	"time"
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
		batches, beats = batches+b-batches0, beats+n-beats0
	}
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
