package shard_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sessiond/sessiond/shard"
)

// TestAFollowerLearnsOfACommitFromTheNextHeartbeat: after an isolated write
// the leader sends no append until its commit interval passes, here a
// minute; the followers still apply the write within a few heartbeats,
// because the heartbeats carry the commit index.
func TestAFollowerLearnsOfACommitFromTheNextHeartbeat(t *testing.T) {
	c := makeClusterWith(t, 3, 1, func(cfg *shard.HostConfig) {
		cfg.Timing.Commit = time.Minute
	}, 0)
	lead := c.leader(0)
	c.converged(0) // the leader's no-op is everywhere
	term := lead.Status().Term
	mustAppend(t, lead, "s1", "m1")
	want := lead.FSM().AppliedIndex()
	start := time.Now()
	eventually(t, 10*time.Second, func() error {
		for _, f := range c.followers(0, lead) {
			if got := f.FSM().AppliedIndex(); got < want {
				return fmt.Errorf("follower %s applied %d, the write is %d", c.hostOf(f).id, got, want)
			}
		}
		return nil
	})
	t.Logf("followers applied the write %v after it was acknowledged", time.Since(start).Round(time.Millisecond))
	if got := c.leader(0).Status().Term; got != term {
		t.Fatalf("term moved from %d to %d: an election, not a heartbeat, told the followers", term, got)
	}
}
