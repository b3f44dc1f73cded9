package shard_test

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/shard"
)

// TestCloseDuringAppliesAnswersEveryApply closes a leader while clients are
// applying. hashicorp/raft never answers a future that was queued when it
// shut down (its buffered apply channel is never drained), so a Shard that
// waits on such a future without also watching its own shutdown would hang
// its caller, or its own Close, forever. Every Apply must return and Close
// must finish.
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
		if !stopsWithin(h, 30*time.Second) {
			t.Fatalf("round %d: Close did not return within 30s of winning the election", round)
		}
	}
}

// stalledReader yields a few bytes of a snapshot, then blocks until release
// is closed: a leader that stopped sending in the middle of a snapshot
// without closing the connection (paused, or cut off by a partition).
type stalledReader struct {
	sent    bool
	release chan struct{}
}

func (r *stalledReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return len(p), nil // zeros: enough to pass the transport's write buffer
	}
	<-r.release
	return 0, io.EOF
}

// A follower in the middle of receiving a snapshot reads from the leader's
// connection without a deadline. Closing the replica must not wait for the
// rest of that snapshot.
func TestCloseWhileAStalledSnapshotIsArriving(t *testing.T) {
	h := newTestHost(t, "follower", 1, nil)
	h.open(0)

	// A peer speaking raft's transport protocol through a mux of its own.
	peerLn := listen(t, "")
	peerMux := shard.NewMux(peerLn, peerLn.Addr(), testClusterID, testLogger())
	go peerMux.Serve()
	t.Cleanup(func() { peerMux.Close() })
	layer, err := peerMux.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	trans := raft.NewNetworkTransport(layer, 1, 30*time.Second, io.Discard)
	t.Cleanup(func() { trans.Close() })
	stalled := &stalledReader{release: make(chan struct{})}
	t.Cleanup(func() { close(stalled.release) })
	go func() {
		var resp raft.InstallSnapshotResponse
		_ = trans.InstallSnapshot("follower", raft.ServerAddress(h.addr), &raft.InstallSnapshotRequest{
			RPCHeader:       raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("peer"), Addr: []byte(peerLn.Addr().String())},
			SnapshotVersion: raft.SnapshotVersionMax, Term: 5, Leader: []byte(peerLn.Addr().String()),
			LastLogIndex: 1000, LastLogTerm: 5, Size: 64 << 20, ConfigurationIndex: 1,
			Configuration: raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{
				{ID: "peer", Address: raft.ServerAddress(peerLn.Addr().String())},
				{ID: "follower", Address: raft.ServerAddress(h.addr)},
			}}),
		}, &resp, stalled)
	}()
	time.Sleep(500 * time.Millisecond) // the follower is now inside the snapshot's io.Copy

	if !stopsWithin(h, 15*time.Second) {
		t.Fatalf("Close did not return within 15s while a snapshot stalled mid-stream")
	}
}

// stopsWithin stops h and reports whether that returned within d.
func stopsWithin(h *testHost, d time.Duration) bool {
	closed := make(chan struct{})
	go func() {
		h.stop()
		close(closed)
	}()
	select {
	case <-closed:
		return true
	case <-time.After(d):
		return false
	}
}
