package shard

import (
	"testing"
	"time"
)

// TestStalledFollowerGetsNewConnectionsThenANewLeader: a follower that
// answers but takes no entries is repaired in two steps, one stallAfter
// apart; one that does not answer is only reported, at most every 30 s;
// progress ends the stall.
func TestStalledFollowerGetsNewConnectionsThenANewLeader(t *testing.T) {
	const stallAfter = 3 * time.Second
	t0 := time.Unix(1000, 0)
	var p progressTracker
	p.observe("f", 10, t0)

	at := func(d time.Duration, leaderLast uint64, answered bool) repairAction {
		now := t0.Add(d)
		if answered {
			p.observe("f", 10, now) // answers, log does not grow
		}
		f, ok := p.progress("f", leaderLast, now)
		if !ok {
			t.Fatal("no progress for a follower that answered")
		}
		return p.decide("f", f, stallAfter, now)
	}
	if a := at(time.Second, 50, true); a != repairNone {
		t.Fatalf("after 1s: %v", a)
	}
	if a := at(3500*time.Millisecond, 50, true); a != repairResetConnections {
		t.Fatalf("after 3.5s answering: %v, want new connections", a)
	}
	if a := at(4*time.Second, 50, true); a != repairNone {
		t.Fatalf("right after the first repair: %v", a)
	}
	if a := at(7*time.Second, 50, true); a != repairTransferLeadership {
		t.Fatalf("still stuck a stallAfter later: %v, want a leadership transfer", a)
	}
	// Progress resets the stall.
	p.observe("f", 11, t0.Add(8*time.Second))
	if a := at(9*time.Second, 50, false); a != repairNone {
		t.Fatalf("just after progress: %v", a)
	}
	// Silent for long: reported, not repaired, and not every second.
	if a := at(20*time.Second, 50, false); a != repairWarnUnreachable {
		t.Fatalf("not answering: %v, want a warning", a)
	}
	if a := at(21*time.Second, 50, false); a != repairNone {
		t.Fatalf("warned a second ago: %v", a)
	}
	// Caught up: never stalled, however long since it last grew.
	if f, _ := p.progress("f", 11, t0.Add(60*time.Second)); f.Stalled != 0 {
		t.Fatalf("caught-up follower reported stalled for %v", f.Stalled)
	}
}
