package shard_test

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/shard"
)

// timingWith is testTiming with the given heartbeat timeout.
func timingWith(heartbeat time.Duration) shard.Timing {
	t := shard.Tuning{Heartbeat: heartbeat}.Timing()
	t.Apply, t.Read = 10*time.Second, 10*time.Second
	return t
}

// slowTiming is a heartbeat timeout (8 s) long enough to tell a prompted
// election from a timed-out one: a follower that waits it out campaigns a
// full timeout after it last heard from its leader, a prompted one after
// 0.7 of it.
func slowTiming(cfg *shard.HostConfig) { cfg.Timing = timingWith(8 * time.Second) }

// When the leader's process is gone, its connections close and its port
// refuses connections; the followers campaign at once instead of waiting
// out the heartbeat timeout, and every acknowledged write is still there.
func TestAShardWhoseLeadersProcessIsGoneElectsANewLeaderWithoutWaitingForTheTimeout(t *testing.T) {
	c := makeClusterWith(t, 3, 1, slowTiming, 0)
	lead := c.leader(0)
	for i := range 20 {
		mustAppend(t, lead, "s", fmt.Sprintf("m%d", i))
	}
	oldTerm := lead.Status().Term
	c.converged(0) // every follower holds every entry: the first to campaign can win

	gone := c.hostOf(lead)
	// No follower times out before a heartbeat timeout after it last heard
	// from the leader; a new leader before the earliest such moment was
	// prompted.
	deadline := time.Now().Add(time.Hour)
	for _, f := range c.followers(0, lead) {
		if d := shard.LastContact(f).Add(8 * time.Second); d.Before(deadline) {
			deadline = d
		}
	}
	start := time.Now()
	gone.stop() // closes its connections and its listener, as a dying process does

	var next *shard.Shard
	eventually(t, time.Until(deadline)-200*time.Millisecond, func() error {
		for _, s := range c.replicas(0) {
			if s.IsLeader() {
				next = s
				return nil
			}
		}
		return fmt.Errorf("no new leader %v after the old one's process went", time.Since(start))
	})
	t.Logf("new leader after %v", time.Since(start))
	if next.Status().Term <= oldTerm {
		t.Fatalf("new leader's term %d, want above %d", next.Status().Term, oldTerm)
	}
	mustAppend(t, next, "s", "after")
	if got := sessionMessages(t, next, "s"); got != 21 {
		t.Fatalf("the new leader holds %d messages of session s, want 21", got)
	}
}

// A closed connection to a node that still listens prompts nothing: its
// leaders keep leading and no term changes.
func TestAClosedConnectionToALiveLeaderStartsNoElection(t *testing.T) {
	c := makeClusterWith(t, 3, 1, slowTiming, 0)
	lead := c.leader(0)
	term := lead.Status().Term
	for _, h := range c.hosts {
		shard.PeerClosed(h.host)
	}
	time.Sleep(8 * time.Second) // dials, 0.7 of a heartbeat of silence and every follower's turn
	for _, s := range c.replicas(0) {
		if got := s.Status().Term; got != term {
			t.Fatalf("replica on %s at term %d, want %d: a live leader was deposed", c.hostOf(s).id, got, term)
		}
	}
	if !lead.IsLeader() {
		t.Fatal("the leader lost its leadership")
	}
}

// sessionMessages is how many messages replica s's state holds for session id.
func sessionMessages(t *testing.T, s *shard.Shard, id string) int {
	t.Helper()
	sess, ok := s.FSM().Get(id)
	if !ok {
		return 0
	}
	return sess.MessageCount()
}

// A refused dial alone deposes nobody: a leader that is still heard from
// keeps leading although its address refuses a follower (a firewall's
// reject, a stale address), because a follower is prompted only after 0.7
// of a heartbeat timeout without word from its leader.
func TestALeaderStillHeardFromIsNotDeposedWhenItsAddressRefuses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := raft.ServerAddress(ln.Addr().String())
	ln.Close()                // nothing listens here now: a dial is refused
	var refusing atomic.Value // the node id whose address refuses
	refusing.Store("")
	c := makeClusterWith(t, 3, 1, func(cfg *shard.HostConfig) {
		cfg.Timing = timingWith(time.Second)
		cfg.AddressOf = addressFunc(func(id raft.ServerID) (raft.ServerAddress, error) {
			if string(id) == refusing.Load().(string) {
				return closed, nil
			}
			return "", errors.New("use the configured address")
		})
	}, 0)
	lead := c.leader(0)
	term := lead.Status().Term
	refusing.Store(c.hostOf(lead).id)
	for _, h := range c.hosts {
		shard.PeerClosed(h.host)
	}
	time.Sleep(3 * time.Second) // dials, 0.7 of a heartbeat, every turn, the second probe
	for _, s := range c.replicas(0) {
		if got := s.Status().Term; got != term {
			t.Fatalf("replica on %s at term %d, want %d: a leader still heard from was deposed", c.hostOf(s).id, got, term)
		}
	}
	if !lead.IsLeader() {
		t.Fatal("the leader lost its leadership")
	}
}

// addressFunc is a raft.ServerAddressProvider.
type addressFunc func(raft.ServerID) (raft.ServerAddress, error)

func (f addressFunc) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) { return f(id) }
