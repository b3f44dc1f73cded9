package shard_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/shard"
)

// suffrageOf returns id's suffrage in the leader's latest configuration, or
// "" when id is not a member.
func suffrageOf(t *testing.T, s *shard.Shard, id string) string {
	t.Helper()
	cfg, _, err := s.Configuration()
	if err != nil {
		t.Fatalf("configuration: %v", err)
	}
	for _, srv := range cfg.Servers {
		if string(srv.ID) == id {
			if srv.Suffrage == raft.Voter {
				return "voter"
			}
			return "nonvoter"
		}
	}
	return ""
}

// addLearner opens an empty replica of shard 0 on a new host n2 and adds it
// to lead's group as a learner. It returns the replica and the index of the
// configuration that lists it.
func addLearner(t *testing.T, lead *shard.Shard) (*testHost, *shard.Shard, uint64) {
	t.Helper()
	joiner := newTestHost(t, "n2", 1, nil)
	replica := joiner.open(0)
	_, idx, err := lead.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	learner, err := lead.AddLearner("n2", joiner.addr, idx)
	if err != nil {
		t.Fatalf("add learner: %v", err)
	}
	return joiner, replica, learner
}

func TestLearnerReceivesTheLogIsPromotedAndRemoved(t *testing.T) {
	c := makeCluster(t, 1, 1, 0)
	lead := c.leader(0)
	mustAppend(t, lead, "chat", "before-join")

	joiner, replica, learner := addLearner(t, lead)
	if got := suffrageOf(t, lead, "n2"); got != "nonvoter" {
		t.Fatalf("after AddLearner n2 is %q, want nonvoter", got)
	}
	eventually(t, 20*time.Second, func() error {
		if got, want := replica.FSM().AppliedIndex(), lead.FSM().AppliedIndex(); got < want {
			return fmt.Errorf("learner applied %d of %d", got, want)
		}
		return nil
	})
	if _, ok := replica.FSM().Get("chat"); !ok {
		t.Fatal("learner caught up without the session written before it joined")
	}

	promoted, err := lead.Promote("n2", joiner.addr, learner)
	if err != nil {
		t.Fatalf("promote: %v", err)
	}
	if promoted <= learner {
		t.Fatalf("promotion committed at index %d, not after the learner's configuration at %d", promoted, learner)
	}
	if got := suffrageOf(t, lead, "n2"); got != "voter" {
		t.Fatalf("after Promote n2 is %q, want voter", got)
	}
	if lead.CommitIndex() < promoted || lead.LastIndex() < promoted {
		t.Fatalf("leader's commit index %d, last index %d: below the promotion at %d",
			lead.CommitIndex(), lead.LastIndex(), promoted)
	}

	if _, err := lead.RemoveReplica("n2", promoted); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if got := suffrageOf(t, lead, "n2"); got != "" {
		t.Fatalf("after RemoveReplica n2 is still a %s", got)
	}
}

func TestMembershipChangeFromAStaleConfigurationChangesNothing(t *testing.T) {
	c := makeCluster(t, 1, 1, 0)
	lead := c.leader(0)
	joiner, _, learner := addLearner(t, lead)
	if _, err := lead.Promote("n2", joiner.addr, learner); err != nil {
		t.Fatalf("promote from the learner's configuration: %v", err)
	}

	if _, err := lead.RemoveReplica("n2", learner); err == nil {
		t.Fatal("removal computed from the configuration before the promotion succeeded")
	}
	if got := suffrageOf(t, lead, "n2"); got != "voter" {
		t.Fatalf("after a refused removal n2 is %q, want still voter", got)
	}
}

func TestMembershipChangeOnAFollowerNamesTheLeader(t *testing.T) {
	c := makeCluster(t, 3, 1, 0)
	lead := c.leader(0)
	leaderID, _ := lead.Leader()
	follower := c.followers(0, lead)[0]
	_, idx, err := follower.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func() (uint64, error){
		"add learner": func() (uint64, error) { return follower.AddLearner("n9", "127.0.0.1:1", idx) },
		"promote":     func() (uint64, error) { return follower.Promote("n2", "127.0.0.1:1", idx) },
		"remove":      func() (uint64, error) { return follower.RemoveReplica(leaderID, idx) },
	} {
		_, err := change()
		var nle *shard.NotLeaderError
		if !errors.As(err, &nle) {
			t.Fatalf("%s on a follower: %v, want *NotLeaderError", name, err)
		}
		if nle.LeaderID != leaderID {
			t.Errorf("%s on a follower names leader %q, want %q", name, nle.LeaderID, leaderID)
		}
	}
	if got := suffrageOf(t, lead, "n9"); got != "" {
		t.Fatalf("a change refused by a follower added n9 as %s", got)
	}
}

// TestARemovalIsNotReportedCommittedBeforeAQuorumHasIt: a removal the
// leader has appended but no follower has stored is in the leader's latest
// configuration, yet CommittedConfiguration refuses to vouch for it, so no
// replica's data is deleted on the strength of a change that can still be
// lost; once the followers are back the removal commits and is reported.
func TestARemovalIsNotReportedCommittedBeforeAQuorumHasIt(t *testing.T) {
	wires := newLinks(t)
	c := makeClusterWith(t, 3, 1, func(cfg *shard.HostConfig) {
		wires.route(cfg)
		// A lease long enough that the cut-off leader still leads, and
		// appends the removal, however slow this machine is. The lease
		// runs from the followers' last answers, which may be half the
		// heartbeat old when they are cut off (heartbeats leave every half
		// of it), so it is the longest raft allows: the heartbeat itself.
		cfg.Timing.Heartbeat, cfg.Timing.LeaderLease = 3*time.Second, 3*time.Second
	}, 0)
	lead := c.leader(0)
	// raft takes a membership change only once the leader has committed an
	// entry of its term, and a committed write proves that. It also leaves
	// the leader with fresh answers from both followers, so its lease runs
	// from just before the cut-off. (Applied indexes are no proof: raft's
	// no-op entry never reaches the state machine.)
	mustAppend(t, lead, "s", "m1")
	followers := c.followers(0, lead)
	victim := c.hostOf(followers[0]).id
	for _, f := range followers {
		wires.pause(c.hostOf(f).id)
	}
	removed := make(chan error, 1)
	go func() {
		_, err := lead.RemoveReplica(victim, 0)
		removed <- err
	}()
	eventually(t, 5*time.Second, func() error {
		select {
		case err := <-removed:
			removed <- err
			if err != nil {
				return fmt.Errorf("remove failed: %v", err)
			}
		default:
		}
		if suffrageOf(t, lead, victim) != "" {
			return fmt.Errorf("%s still in the leader's latest configuration", victim)
		}
		return nil
	})
	if cfg, err := lead.CommittedConfiguration(); err == nil {
		t.Fatalf("an uncommitted removal was reported committed: %+v", cfg.Servers)
	}
	for _, f := range followers {
		wires.resume(c.hostOf(f).id)
	}
	<-removed // committed, or lost with the leadership the pause cost
	others := []*shard.Shard{lead, followers[1]}
	eventually(t, 20*time.Second, func() error {
		for _, s := range others {
			if !s.IsLeader() {
				continue
			}
			if suffrageOf(t, s, victim) != "" {
				if _, err := s.RemoveReplica(victim, 0); err != nil {
					return err
				}
			}
			cfg, err := s.CommittedConfiguration()
			if err != nil {
				return err
			}
			for _, srv := range cfg.Servers {
				if string(srv.ID) == victim {
					return fmt.Errorf("committed configuration still lists %s", victim)
				}
			}
			return nil
		}
		return errors.New("no leader among the remaining replicas")
	})
}

// TestLinearizableReadsAreServedRightAfterAConfigurationCheck: proving a
// configuration committed leaves nothing in the log that the state machine
// never sees, so a linearizable read straight after it is answered at once
// rather than waiting for the next write.
func TestLinearizableReadsAreServedRightAfterAConfigurationCheck(t *testing.T) {
	c := makeCluster(t, 3, 1, 0)
	lead := c.leader(0)
	mustAppend(t, lead, "s", "m1")
	if _, err := lead.CommittedConfiguration(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := lead.Read(ctx, shard.Linearizable); err != nil {
		t.Fatalf("linearizable read after a configuration check: %v", err)
	}
}
