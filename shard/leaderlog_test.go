package shard_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessiond/sessiond/shard"
)

// clusterWithHeldLeaderWrites starts three replicas of shard 0, applies one
// write, and stalls the leader's own log writes until release; committed is
// the leader's commit index before the stall.
func clusterWithHeldLeaderWrites(t *testing.T) (c *testCluster, lead *shard.Shard, committed uint64, release func()) {
	c = makeCluster(t, 3, 1, 0)
	lead = c.leader(0)
	if _, err := c.apply(0, appendCmd("before", "m0")); err != nil {
		t.Fatal(err)
	}
	return c, lead, lead.CommitIndex(), shard.HoldLeaderWrites(lead)
}

// TestAWriteIsAppliedAndAcknowledgedOnlyOnceItsLeaderHoldsItDurably: a
// leader replicates a write while its own log is still writing it, and
// raft may count it committed on the followers' copies alone; but no
// replica applies it and the writer is not answered until the leader's copy
// is durable too, which makes two durable copies of three.
func TestAWriteIsAppliedAndAcknowledgedOnlyOnceItsLeaderHoldsItDurably(t *testing.T) {
	c, lead, committed, release := clusterWithHeldLeaderWrites(t)
	defer release()

	// Two writes: the append that carries the second also carries raft's
	// commit of the first, and heartbeats carry commits too.
	answered := make(chan error, 2)
	for i, session := range []string{"held1", "held2"} {
		go func() {
			_, err := lead.Apply(context.Background(), appendCmd(session, "m1"))
			answered <- err
		}()
		eventually(t, 10*time.Second, func() error {
			if lead.CommitIndex() < committed+uint64(i)+1 {
				return errors.New("raft has not committed the held write on the followers' copies")
			}
			return nil
		})
	}
	select {
	case err := <-answered:
		t.Fatalf("a write was answered (%v) before its leader's copy was durable", err)
	case <-time.After(time.Second): // heartbeats go out every half second
	}
	for _, r := range c.replicas(0) {
		for _, session := range []string{"held1", "held2"} {
			if _, ok := r.FSM().Get(session); ok {
				t.Fatalf("a replica applied %s before its leader's copy was durable", session)
			}
		}
	}

	release()
	for range 2 {
		select {
		case err := <-answered:
			if err != nil {
				t.Fatalf("a write failed once its leader's copy was durable: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a write was not answered once its leader's copy was durable")
		}
	}
	eventually(t, 10*time.Second, func() error {
		for _, r := range c.replicas(0) {
			for _, session := range []string{"held1", "held2"} {
				if _, ok := r.FSM().Get(session); !ok {
					return errors.New("a replica has not applied the writes")
				}
			}
		}
		return nil
	})
}

// TestALeaderClosingBeforeItsCopyIsDurableDoesNotAcknowledgeTheWrite: a
// replica that closes while raft has committed a write its own log has not
// yet written answers the writer with an error, never success, and its
// close does not hang on the state machine waiting for that write.
func TestALeaderClosingBeforeItsCopyIsDurableDoesNotAcknowledgeTheWrite(t *testing.T) {
	_, lead, committed, release := clusterWithHeldLeaderWrites(t)
	defer release()
	answered := make(chan error, 1)
	go func() {
		_, err := lead.Apply(context.Background(), appendCmd("held", "m1"))
		answered <- err
	}()
	eventually(t, 10*time.Second, func() error {
		if lead.CommitIndex() <= committed {
			return errors.New("raft has not committed the held write on the followers' copies")
		}
		return nil
	})
	closed := make(chan error, 1)
	go func() { closed <- lead.Close() }()
	select {
	case err := <-answered:
		if err == nil {
			t.Fatal("a write was acknowledged by a leader that closed before its copy was durable")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the writer was not answered when its leader closed")
	}
	release() // the log write in progress finishes, as a real one would
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("closing the leader hung")
	}
}
