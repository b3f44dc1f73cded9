package shard_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/shard"
)

// BenchmarkApplySingleNode measures acknowledged appends per second on one
// node with one shard: 64 goroutines each append 256-byte messages, one per
// command, and every acknowledgement waits for the shared log's fsync.
//
//	go test -run '^$' -bench ApplySingleNode -benchtime 5s ./shard
func BenchmarkApplySingleNode(b *testing.B) {
	const clients = 64
	_, s := single(b, nil)
	benchAppends(b, []*shard.Shard{s}, clients)
}

// BenchmarkReplicaCost reports what each idle replica costs in goroutines
// and live heap: 16 shards opened and bootstrapped on one host (no peers, so
// no transport connections), and 16 shards on each of three in-process
// hosts (with the per-peer connections and their buffers). It measures; it
// asserts nothing. One iteration takes seconds, so -benchtime 1x is enough.
//
//	go test -run '^$' -bench ReplicaCost -benchtime 1x ./shard
func BenchmarkReplicaCost(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				g, heap := replicaCost(b, nodes, 16)
				b.ReportMetric(g, "goroutines/replica")
				b.ReportMetric(heap/1024, "heapKiB/replica")
			}
		})
	}
}

func replicaCost(b *testing.B, nodes, shards int) (goroutines, heapBytes float64) {
	// Hosts with no replica yet: their mux goroutines are not per-replica.
	hosts := make([]*testHost, nodes)
	var voters []raft.Server
	for i := range hosts {
		hosts[i] = newTestHost(b, fmt.Sprintf("n%d", i+1), shards, nil)
		voters = append(voters, hosts[i].host.Self())
	}
	defer func() {
		for _, h := range hosts {
			h.stop()
		}
	}()
	g0, heap0 := settledUsage()
	c := &testCluster{t: b, hosts: hosts}
	for id := uint32(0); int(id) < shards; id++ {
		c.shards = append(c.shards, id)
		for _, h := range hosts {
			if err := h.open(id).Bootstrap(voters); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, id := range c.shards {
		if _, err := c.apply(id, appendCmd("warm", "m1")); err != nil { // opens every connection
			b.Fatal(err)
		}
		c.converged(id)
	}
	time.Sleep(2 * testTiming.Heartbeat) // let heartbeats and pools reach steady state
	g1, heap1 := settledUsage()
	replicas := float64(nodes * shards)
	goroutines, heapBytes = float64(g1-g0)/replicas, float64(heap1-heap0)/replicas
	b.Logf("%d replicas on %d node(s): %d → %d goroutines, heap %d → %d KiB",
		nodes*shards, nodes, g0, g1, heap0>>10, heap1>>10)
	return goroutines, heapBytes
}

func settledUsage() (goroutines int, heap uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}
