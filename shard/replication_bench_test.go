package shard_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// BenchmarkApplyThreeReplicas measures acknowledged appends per second on a
// three-replica shard over loopback TCP: 64 goroutines each append 256-byte
// messages through the leader, one per command, and every acknowledgement
// waits for a quorum's fsync. It runs the transport sessiond uses
// (MaxRPCsInFlight=1, no pipelining) and hashicorp/raft's default
// (MaxRPCsInFlight=2, pipelined) to show what turning pipelining off costs.
//
//	go test -run '^$' -bench ApplyThreeReplicas -benchtime 5s ./shard
func BenchmarkApplyThreeReplicas(b *testing.B) {
	for _, inFlight := range []int{1, 2} {
		b.Run(fmt.Sprintf("MaxRPCsInFlight=%d", inFlight), func(b *testing.B) {
			restore := shard.SetMaxRPCsInFlight(inFlight)
			c := makeCluster(b, 3, 1, 0)
			restore()
			benchAppends(b, []*shard.Shard{c.leader(0)}, 64)
		})
	}
}

// BenchmarkApplyGroups measures what the raft layer alone (raft, the shared
// log, the node connections; no HTTP, no forwarding) stores when the same
// 64 writers spread their appends over 1 or 16 three-replica groups, each
// write to a group picked at random. The three hosts share this process,
// so the rate is the layer's ceiling on this machine, not a cluster's: it
// shows what splitting one stream of writes into 16 groups' rounds costs.
//
//	go test -run '^$' -bench ApplyGroups -benchtime 20000x ./shard
func BenchmarkApplyGroups(b *testing.B) {
	for _, groups := range []int{1, 16} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			ids := make([]uint32, groups)
			for i := range ids {
				ids[i] = uint32(i)
			}
			c := makeCluster(b, 3, groups, ids...)
			leaders := make([]*shard.Shard, groups)
			for i, id := range ids {
				leaders[i] = c.leader(id)
			}
			benchAppends(b, leaders, 64)
		})
	}
}

// benchAppends applies b.N appends of 256 bytes each from clients
// goroutines, each to one of leaders picked at random, and reports the rate.
func benchAppends(b *testing.B, leaders []*shard.Shard, clients int) {
	content := strings.Repeat("x", 256)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				s := leaders[rng.IntN(len(leaders))]
				cmd := &fsm.Command{Op: fsm.OpAppendMessages, At: time.Now().UnixMilli(),
					// A fresh session every 10 000 messages keeps each well
					// under the per-session message limit.
					Session:  fmt.Sprintf("c%d-%d", c, i/10_000),
					Messages: []fsm.NewMessage{{ID: fmt.Sprintf("m%d", i), Role: "user", Content: content}}}
				res, err := s.Apply(context.Background(), cmd)
				if err != nil || res.Status != fsm.StatusOK {
					b.Errorf("append: %+v, %v", res, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}
