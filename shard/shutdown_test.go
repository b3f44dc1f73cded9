package shard_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestCloseDuringAppliesAnswersEveryApply closes a leader while clients are
// applying. hashicorp/raft never answers a future that was queued when it
// shut down (hashicorp/raft#498), so a Shard that waits on such a future
// without also watching its own shutdown would hang its caller, or its own
// Close, forever. Every Apply must return and Close must finish.
func TestCloseDuringAppliesAnswersEveryApply(t *testing.T) {
	for round := 0; round < 5; round++ {
		h, s := single(t, nil)
		var started, returned atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := 0; c < 64; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					started.Add(1)
					s.Apply(context.Background(), appendCmd("s", "m"))
					returned.Add(1)
				}
			}()
		}
		for started.Load() < 500 {
			time.Sleep(time.Millisecond)
		}
		closed := make(chan struct{})
		go func() {
			h.stop()
			close(closed)
		}()
		close(stop)
		allReturned := make(chan struct{})
		go func() {
			wg.Wait()
			close(allReturned)
		}()
		for _, c := range []struct {
			what string
			ch   chan struct{}
		}{{"Close", closed}, {"every Apply", allReturned}} {
			select {
			case <-c.ch:
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: %s did not return within 30s of Close (%d applies started, %d returned)",
					round, c.what, started.Load(), returned.Load())
			}
		}
	}
}

// TestCloseRightAfterElectionFinishes closes a replica the moment it wins
// its election, while its no-op for read readiness may still be queued.
func TestCloseRightAfterElectionFinishes(t *testing.T) {
	for round := 0; round < 20; round++ {
		h := newTestHost(t, "solo", 1, nil)
		s := h.open(0)
		if err := s.Bootstrap([]raft.Server{h.host.Self()}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, func() error {
			if !s.IsLeader() {
				return context.DeadlineExceeded
			}
			return nil
		})
		closed := make(chan struct{})
		go func() {
			h.stop()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Close did not return within 30s of winning the election", round)
		}
	}
}
