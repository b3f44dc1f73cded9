package shard_test

import (
	"io"
	"net"
	"net/rpc"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/shard"
)

// fakeLeader serves Node.Apply, counting calls and holding each until
// released.
type fakeLeader struct {
	calls   atomic.Int32
	arrived chan struct{}
	release chan struct{}
}

func (f *fakeLeader) Apply(args shard.ApplyArgsForTest, reply *shard.ApplyReplyForTest) error {
	f.calls.Add(1)
	f.arrived <- struct{}{}
	<-f.release
	return nil
}

// TestForwardedCommandIsNeverSentTwice: when the connection a forwarded
// command is in flight on is closed under it (another caller timed out on
// the same connection), the call counts as sent and is not repeated on a
// new connection: the peer may still run what it read.
func TestForwardedCommandIsNeverSentTwice(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	leader := &fakeLeader{arrived: make(chan struct{}, 4), release: make(chan struct{})}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Node", leader); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := io.ReadFull(c, make([]byte, shard.PreambleLen)); err != nil {
					c.Close()
					return
				}
				srv.ServeCodec(shard.NodeRPCCodec(c))
			}()
		}
	}()
	h := newTestHost(t, "follower", 1, nil)
	type result struct {
		sent bool
		err  error
	}
	done := make(chan result, 1)
	go func() {
		sent, err := shard.ApplyVia(h.host, ln.Addr().String())
		done <- result{sent, err}
	}()
	select {
	case <-leader.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the forwarded command never arrived")
	}
	shard.DropNodeClient(h.host, ln.Addr().String())
	r := <-done
	close(leader.release)
	if r.err == nil || !r.sent {
		t.Fatalf("call whose connection was closed under it: sent=%v err=%v; want sent=true and an error", r.sent, r.err)
	}
	time.Sleep(200 * time.Millisecond) // a second copy would arrive by now
	if n := leader.calls.Load(); n != 1 {
		t.Fatalf("the leader received the command %d times", n)
	}
}
