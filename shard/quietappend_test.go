package shard_test

import (
	"testing"
	"time"
)

// TestAnIdleLeaderStopsRepeatingTheCommitIndexYetFollowersLearnIt: once the
// followers have acknowledged the commit index, an idle leader's repeats
// of it mostly stay home (raft would send one to each follower of each
// group every 150–300ms); a write afterwards still reaches every replica,
// and the followers learn its commit without another write.
func TestAnIdleLeaderStopsRepeatingTheCommitIndexYetFollowersLearnIt(t *testing.T) {
	const shards = 4
	ids := []uint32{0, 1, 2, 3}
	c := makeCluster(t, 3, shards, ids...)
	for _, id := range ids {
		if _, err := c.apply(id, appendCmd("s", "m1")); err != nil {
			t.Fatal(err)
		}
		c.converged(id)
	}
	time.Sleep(500 * time.Millisecond) // the last commit index reaches everyone

	sent := func() (n uint64) {
		for _, h := range c.hosts {
			n += h.host.SharedAppends()
		}
		return n
	}
	const idle = 3 * time.Second
	before := sent()
	time.Sleep(idle)
	pairs := uint64(shards * 2) // each group's leader and its two followers
	got := sent() - before
	t.Logf("%d appends sent in %v of idling by %d leader-follower pairs", got, idle, pairs)
	// Without the quiet, each pair sends at least idle/300ms = 10 of them;
	// with it, one a second (quietRefresh), and a few more if a heartbeat
	// fails on a slow machine.
	if limit := 5 * pairs; got > limit {
		t.Fatalf("%d empty appends in %v: more than %d, the leaders kept repeating the commit index", got, idle, limit)
	}

	for _, id := range ids {
		if _, err := c.apply(id, appendCmd("s", "m2")); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		// Every replica applies m2: the followers learned the commit index
		// that covers it without a later write.
		c.converged(id)
		for _, r := range c.replicas(id) {
			if got, want := r.FSM().AppliedIndex(), c.leader(id).Status().CommitIndex; got != want {
				t.Fatalf("shard %d: replica applied %d, leader committed %d", id, got, want)
			}
		}
	}
}
