package shard_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessiond/sessiond/shard"
)

// leaseCluster is three replicas of shard 0 whose raft connections run
// through wires, with a heartbeat timeout long enough that the lease
// (half of it) outlasts a slow machine's scheduling, and a leader whose
// lease holds: every follower answered it just now.
func leaseCluster(t *testing.T, wires *links) (*testCluster, *shard.Shard, shard.Timing) {
	timing := shard.Timing{Heartbeat: 4 * time.Second, LeaderLease: 3 * time.Second}
	c := makeClusterWith(t, 3, 1, func(cfg *shard.HostConfig) {
		wires.route(cfg)
		cfg.Timing.Heartbeat, cfg.Timing.LeaderLease = timing.Heartbeat, timing.LeaderLease
	}, 0)
	lead := c.leader(0)
	mustAppend(t, lead, "s", "m1")
	eventually(t, 10*time.Second, func() error {
		if err := shard.ConfirmLeadership(lead); err != nil {
			return err
		}
		if !shard.LeaseHolds(lead) {
			return errors.New("the leader's read lease does not hold")
		}
		return nil
	})
	return c, lead, timing
}

// cutOff pauses the network of every follower of lead until the test ends.
func cutOff(t *testing.T, c *testCluster, wires *links, lead *shard.Shard) {
	for _, f := range c.followers(0, lead) {
		id := c.hostOf(f).id
		wires.pause(id)
		t.Cleanup(func() { wires.resume(id) })
	}
}

// TestALeaderWhoseVotersAllAnsweredLatelyReadsWithoutAskingThemAgain: a
// linearizable read on a leader whose followers all accepted a message
// sent less than a lease ago is served at once, although the followers
// cannot be reached: a round of heartbeats would wait for answers that
// never come, until the leader stepped down.
func TestALeaderWhoseVotersAllAnsweredLatelyReadsWithoutAskingThemAgain(t *testing.T) {
	wires := newLinks(t)
	c, lead, _ := leaseCluster(t, wires)
	cutOff(t, c, wires, lead)
	byLease, _ := c.hostOf(lead).host.ReadConfirmations()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := lead.Read(ctx, shard.Linearizable); err != nil {
		t.Fatalf("a read within the lease: %v", err)
	}
	if after, _ := c.hostOf(lead).host.ReadConfirmations(); after != byLease+1 {
		t.Fatalf("read rounds confirmed by the lease went from %d to %d, want one more", byLease, after)
	}
	if sess, ok := lead.FSM().Get("s"); !ok || sess.MessageCount() != 1 {
		t.Fatalf("the read shows %v, want the acknowledged message", sess)
	}
}

// TestALeaderCutOffFromItsVotersServesNoReadOnceItsLeaseIsOver: once a
// lease has passed since the leader's followers were cut off, no follower
// answer renews it, and a linearizable read is refused rather than served
// from a lease that may no longer be exclusive.
func TestALeaderCutOffFromItsVotersServesNoReadOnceItsLeaseIsOver(t *testing.T) {
	wires := newLinks(t)
	c, lead, timing := leaseCluster(t, wires)
	cutOff(t, c, wires, lead)
	time.Sleep(shard.LeaseDuration(timing) + 100*time.Millisecond)
	if shard.LeaseHolds(lead) {
		t.Fatal("the lease still holds a lease after the followers were cut off")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*timing.Heartbeat)
	defer cancel()
	if err := lead.Read(ctx, shard.Linearizable); err == nil {
		t.Fatal("a read begun after the lease ended was served by a leader cut off from its followers")
	}
}

// TestALeaderHandingOverLeadershipStopsReadingFromItsLease: the target of
// a transfer campaigns as soon as it is told, with its voters' consent, so
// the leader's lease ends, for the rest of its term, before it tells it,
// even if the message never arrives; reads confirm leadership with a
// round of heartbeats instead.
func TestALeaderHandingOverLeadershipStopsReadingFromItsLease(t *testing.T) {
	wires := newLinks(t)
	c, lead, _ := leaseCluster(t, wires)
	if err := shard.TellToCampaign(lead, "n9", "127.0.0.1:1"); err == nil {
		t.Fatal("a TimeoutNow to a node outside the group was answered")
	}
	if err := shard.ConfirmLeadership(lead); err != nil {
		t.Fatal(err)
	}
	if shard.LeaseHolds(lead) {
		t.Fatal("the lease holds after the leader told a transfer target to campaign")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, byRound := c.hostOf(lead).host.ReadConfirmations()
	if err := lead.Read(ctx, shard.Linearizable); err != nil {
		t.Fatalf("a read after the transfer attempt: %v", err)
	}
	if _, after := c.hostOf(lead).host.ReadConfirmations(); after != byRound+1 {
		t.Fatalf("read rounds confirmed by heartbeats went from %d to %d, want one more", byRound, after)
	}
}

// TestAReadLeaseTurnedOffIsNeverUsed: with NoReadLease every read round
// confirms leadership with heartbeats, however recent the answers.
func TestAReadLeaseTurnedOffIsNeverUsed(t *testing.T) {
	c := makeClusterWith(t, 3, 1, func(cfg *shard.HostConfig) { cfg.Timing.NoReadLease = true }, 0)
	lead := c.leader(0)
	mustAppend(t, lead, "s", "m1")
	for range 3 {
		if err := shard.ConfirmLeadership(lead); err != nil {
			t.Fatal(err)
		}
		if shard.LeaseHolds(lead) {
			t.Fatal("a lease turned off holds")
		}
	}
	if got := (shard.Tuning{NoReadLease: true}).Timing(); !got.NoReadLease {
		t.Fatal("Tuning.NoReadLease does not reach the timing")
	}
}

// TestOnlyTheCurrentLeaderCanTellAFollowerToCampaignAtOnce: raft obeys any
// TimeoutNow, and voters then grant their votes although they know a
// leader, so one sent by a leader that has since been deposed would start
// an election under the current leader's lease. A follower takes it only
// from its leader, in its current term.
func TestOnlyTheCurrentLeaderCanTellAFollowerToCampaignAtOnce(t *testing.T) {
	c := makeCluster(t, 3, 1, 0)
	lead := c.leader(0)
	leaderID, _ := lead.Leader()
	follower := c.followers(0, lead)[0]
	from, to := c.hostOf(lead), c.hostOf(follower)
	term := shard.Term(follower)
	for name, send := range map[string]func() error{
		"an earlier term": func() error { return shard.SendTimeoutNow(from.host, string(to.host.RaftAddr()), 0, term-1, leaderID) },
		"another node":    func() error { return shard.SendTimeoutNow(from.host, string(to.host.RaftAddr()), 0, term, to.id) },
		"a later term":    func() error { return shard.SendTimeoutNow(from.host, string(to.host.RaftAddr()), 0, term+1, leaderID) },
	} {
		if err := send(); err == nil {
			t.Fatalf("a TimeoutNow from %s was taken", name)
		}
		if got := shard.Term(follower); got != term || follower.IsLeader() {
			t.Fatalf("after a TimeoutNow from %s the follower is in term %d (was %d), leading %v", name, got, term, follower.IsLeader())
		}
	}
	if err := shard.SendTimeoutNow(from.host, string(to.host.RaftAddr()), 0, term, leaderID); err != nil {
		t.Fatalf("the leader's TimeoutNow in the current term: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		if shard.Term(follower) <= term {
			return errors.New("the follower did not campaign")
		}
		return nil
	})
}
