package shard_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// TestLinearizableReadSeesEveryWriteAcknowledgedBeforeIt runs writers and
// readers against one group at once. Before each read a reader notes how
// many appends each writer has had acknowledged; the read, on the leader or
// on a follower (read index), must show at least that many messages in
// every writer's session.
func TestLinearizableReadSeesEveryWriteAcknowledgedBeforeIt(t *testing.T) {
	c := makeCluster(t, 3, 1, 0)
	const writers, readers, perWriter = 4, 8, 40
	var acked [writers]atomic.Int64
	var writing atomic.Int32
	writing.Store(writers)
	var reads, followerReads, refused atomic.Int64

	runConcurrently(writers+readers, func(i int) {
		if i < writers {
			defer writing.Add(-1)
			session := fmt.Sprintf("w%d", i)
			for m := 1; m <= perWriter; m++ {
				if _, err := c.apply(0, appendCmd(session, fmt.Sprintf("m%d", m))); err != nil {
					t.Errorf("append %s/m%d: %v", session, m, err)
					return
				}
				acked[i].Store(int64(m))
			}
			return
		}
		for n := 0; writing.Load() > 0; n++ {
			var floor [writers]int64
			for w := range floor {
				floor[w] = acked[w].Load()
			}
			replicas := c.replicas(0)
			r := replicas[(i+n)%len(replicas)]
			if err := r.Read(context.Background(), shard.Linearizable); err != nil {
				var nl *shard.NotLeaderError
				if errors.As(err, &nl) || errors.Is(err, shard.ErrNotReady) {
					refused.Add(1) // a follower behind, or leadership moved
					continue
				}
				t.Errorf("linearizable read: %v", err)
				return
			}
			reads.Add(1)
			if !r.IsLeader() {
				followerReads.Add(1)
			}
			for w, want := range floor {
				got := 0
				if s, ok := r.FSM().Get(fmt.Sprintf("w%d", w)); ok {
					got = s.MessageCount()
				}
				if int64(got) < want {
					t.Errorf("read saw %d messages of w%d after %d were acknowledged", got, w, want)
					return
				}
			}
		}
	})
	t.Logf("%d linearizable reads (%d on followers), %d refused", reads.Load(), followerReads.Load(), refused.Load())
	if reads.Load() == 0 || followerReads.Load() == 0 {
		t.Fatal("no read succeeded on a follower")
	}
}

// TestFollowerServesLinearizableReadsButRefusesLeaderReads: a follower
// answers a linearizable read once it has applied the leader's read index,
// and always refuses consistency=leader, naming the leader.
func TestFollowerServesLinearizableReadsButRefusesLeaderReads(t *testing.T) {
	c := makeCluster(t, 3, 1, 0)
	lead := c.leader(0)
	leadHost := c.hostOf(lead)
	mustAppend(t, lead, "s1", "m1")
	for _, f := range c.followers(0, lead) {
		err := f.Read(context.Background(), shard.Leader)
		var nl *shard.NotLeaderError
		if !errors.As(err, &nl) || nl.LeaderID != leadHost.id {
			t.Fatalf("leader read on a follower = %v; want *NotLeaderError naming %s", err, leadHost.id)
		}
		// A follower learns the commit index with the leader's next
		// append; until then it may send the read to the leader.
		eventually(t, 5*time.Second, func() error {
			if err := f.Read(context.Background(), shard.Linearizable); err != nil {
				return err
			}
			if s, ok := f.FSM().Get("s1"); !ok || s.MessageCount() != 1 {
				return fmt.Errorf("follower read shows %v", s)
			}
			return nil
		})
	}
	for _, level := range []shard.Consistency{shard.Linearizable, shard.Leader, shard.Stale} {
		if err := lead.Read(context.Background(), level); err != nil {
			t.Fatalf("%v read on the leader: %v", level, err)
		}
	}
}

func TestStaleReadOnAFollowerEventuallyReflectsWrites(t *testing.T) {
	c := makeCluster(t, 3, 1, 0)
	lead := c.leader(0)
	const n = 20
	for m := 1; m <= n; m++ {
		mustAppend(t, lead, "s1", fmt.Sprintf("m%d", m))
	}
	for _, f := range c.followers(0, lead) {
		eventually(t, 10*time.Second, func() error {
			if err := f.Read(context.Background(), shard.Stale); err != nil {
				return fmt.Errorf("stale read on a follower: %w", err)
			}
			s, ok := f.FSM().Get("s1")
			if !ok || s.MessageCount() != n {
				return fmt.Errorf("follower shows %v messages", s)
			}
			return nil
		})
	}
}

// TestLinearizableReadAfterLeaderStopsSeesEveryAcknowledgedWrite stops the
// leader's whole host without handing leadership over, waits for the two
// remaining replicas to elect a new leader, and reads through it.
func TestLinearizableReadAfterLeaderStopsSeesEveryAcknowledgedWrite(t *testing.T) {
	c := makeCluster(t, 3, 2, 0, 1)
	const n = 30
	for _, s := range c.shards {
		for m := 1; m <= n; m++ {
			if _, err := c.apply(s, appendCmd("s", fmt.Sprintf("m%d", m))); err != nil {
				t.Fatal(err)
			}
		}
	}
	old := c.leader(0)
	oldHost := c.hostOf(old)
	oldHost.stop()

	for _, s := range c.shards {
		lead := c.leader(s)
		if id, _ := lead.Leader(); id == oldHost.id {
			t.Fatalf("shard %d still names the stopped node as leader", s)
		}
		eventually(t, 20*time.Second, func() error { return lead.Read(context.Background(), shard.Linearizable) })
		sess, ok := lead.FSM().Get("s")
		if !ok || sess.MessageCount() != n {
			t.Fatalf("shard %d: new leader shows %v, want %d messages", s, sess, n)
		}
		for i, msg := range sess.Messages() {
			if msg.Seq != uint64(i+1) || msg.ID != fmt.Sprintf("m%d", i+1) {
				t.Fatalf("shard %d: message %d is %+v", s, i, msg)
			}
		}
		// The surviving majority keeps taking writes.
		res, err := c.apply(s, appendCmd("s", "after-failover"))
		if err != nil || res.Status != fsm.StatusOK || res.Messages[0].Seq != n+1 {
			t.Fatalf("shard %d: write after failover = %+v, %v", s, res, err)
		}
		c.converged(s)
	}
}

// TestWriteProposedOnAFollowerHostIsAppliedByTheLeader: Host.Apply on a
// node whose replica follows sends the command to the leader's host and
// returns the leader's result, as if the leader had been asked.
func TestWriteProposedOnAFollowerHostIsAppliedByTheLeader(t *testing.T) {
	c := makeCluster(t, 3, 1, 0)
	lead := c.leader(0)
	for i, f := range c.followers(0, lead) {
		host := c.hostOf(f).host
		id := fmt.Sprintf("m%d", i)
		res, err := host.Apply(context.Background(), 0, appendCmd("fwd", id))
		if err != nil {
			t.Fatalf("apply through follower host %s: %v", host.NodeID(), err)
		}
		if res.Status != fsm.StatusOK || len(res.Messages) != 1 || res.Messages[0].ID != id ||
			res.Messages[0].Seq != uint64(i+1) || res.Session == nil || res.Version == 0 {
			t.Fatalf("forwarded append result %+v", res)
		}
		s, ok := lead.FSM().Get("fwd")
		if !ok || s.MessageCount() != i+1 || s.Version != res.Version {
			t.Fatalf("leader's session after the forwarded append: %+v", s)
		}
	}
	// A field write's result carries the whole session.
	f := c.followers(0, lead)[0]
	res, err := c.hostOf(f).host.Apply(context.Background(), 0,
		&fsm.Command{Op: fsm.OpPutField, Session: "fwd", Field: "step", Value: []byte(`"confirm"`)})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := res.Session.Field("step"); !ok || string(v) != `"confirm"` || res.Session.MessageCount() != 2 {
		t.Fatalf("forwarded field write returned session %+v", res.Session)
	}
}

// TestReadsWaitingOnAFollowerShareOneReadIndexRequest: a burst of
// linearizable reads on a follower costs the leader far fewer read-index
// requests than reads, and every read still sees the write acknowledged
// before the burst.
func TestReadsWaitingOnAFollowerShareOneReadIndexRequest(t *testing.T) {
	c := makeCluster(t, 3, 1, 0)
	lead := c.leader(0)
	mustAppend(t, lead, "s1", "m1")
	f := c.followers(0, lead)[0]
	eventually(t, 5*time.Second, func() error { return f.Read(context.Background(), shard.Linearizable) })

	const readers, perReader = 32, 20
	before := shard.ReadIndexAsks(f)
	var served atomic.Int64
	runConcurrently(readers, func(int) {
		for range perReader {
			if err := f.Read(context.Background(), shard.Linearizable); err != nil {
				t.Errorf("follower read: %v", err)
				return
			}
			if s, ok := f.FSM().Get("s1"); !ok || s.MessageCount() != 1 {
				t.Errorf("follower read shows %v", s)
				return
			}
			served.Add(1)
		}
	})
	asks := shard.ReadIndexAsks(f) - before
	t.Logf("%d reads on the follower took %d read-index requests", served.Load(), asks)
	if served.Load() != readers*perReader {
		t.Fatalf("%d of %d reads served", served.Load(), readers*perReader)
	}
	if asks == 0 || asks > uint64(served.Load())/2 {
		t.Errorf("%d read-index requests for %d reads; want one per round of waiting reads, at most half as many", asks, served.Load())
	}
}
