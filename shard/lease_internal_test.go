package shard

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// acceptAll records that followers b and c accepted a heartbeat of term
// sent at sent, each granting a long lease.
func acceptAll(l *leaderLease, term uint64, sent time.Time) {
	for _, id := range []raft.ServerID{"b", "c"} {
		l.accepted(id, term, sent, time.Minute)
	}
}

func TestALeaseHoldsOnlyWhileEveryFollowerAcceptedARecentMessage(t *testing.T) {
	var l leaderLease
	followers := []raft.ServerID{"b", "c"}
	d := time.Second
	t0 := time.Now()
	if l.holds(3, followers, t0, d) {
		t.Fatal("a lease with no acceptance holds")
	}
	l.accepted("b", 3, t0, time.Minute)
	if l.holds(3, followers, t0, d) {
		t.Fatal("holds with one follower of two")
	}
	l.accepted("c", 3, t0.Add(100*time.Millisecond), time.Minute)
	if !l.holds(3, followers, t0.Add(500*time.Millisecond), d) {
		t.Fatal("does not hold with both followers' recent acceptances")
	}
	if l.holds(3, followers, t0.Add(d), d) {
		t.Fatal("holds a full lease after the oldest acceptance was sent")
	}
	l.accepted("b", 3, t0.Add(-time.Second), time.Minute) // an older answer arriving late
	if !l.holds(3, followers, t0.Add(500*time.Millisecond), d) {
		t.Fatal("a late answer to an older message shortened the lease")
	}
	if l.holds(4, followers, t0.Add(500*time.Millisecond), d) {
		t.Fatal("acceptances of term 3 hold a lease in term 4")
	}
	acceptAll(&l, 2, t0.Add(600*time.Millisecond))
	if l.holds(3, followers, t0.Add(1050*time.Millisecond), d) {
		t.Fatal("acceptances of an older term renewed the lease")
	}
	if l.holds(3, nil, t0, d) {
		t.Fatal("a lease with no followers holds")
	}
}

// Each follower grants the lease its own timing allows (a node may run
// with another heartbeat timeout than the leader's); the shortest bounds
// the lease, and a follower that grants none keeps it from holding.
func TestALeaseIsBoundedByWhatEachFollowerGranted(t *testing.T) {
	var l leaderLease
	followers := []raft.ServerID{"b", "c"}
	t0 := time.Now()
	l.accepted("b", 3, t0, time.Minute)
	l.accepted("c", 3, t0, 100*time.Millisecond)
	if !l.holds(3, followers, t0.Add(50*time.Millisecond), time.Second) {
		t.Fatal("does not hold within every grant")
	}
	if l.holds(3, followers, t0.Add(150*time.Millisecond), time.Second) {
		t.Fatal("holds past a follower's shorter grant")
	}
	l.accepted("c", 3, t0.Add(time.Millisecond), 0) // a node that grants no lease
	if l.holds(3, followers, t0.Add(2*time.Millisecond), time.Second) {
		t.Fatal("holds with a follower that granted none")
	}
}

func TestALeaseEndsForTheTermOnceATransferBegins(t *testing.T) {
	var l leaderLease
	followers := []raft.ServerID{"b", "c"}
	now := time.Now()
	acceptAll(&l, 5, now)
	l.revoke(5)
	acceptAll(&l, 5, now.Add(time.Millisecond))
	if l.holds(5, followers, now.Add(2*time.Millisecond), time.Second) {
		t.Fatal("a lease holds after a transfer began in its term")
	}
	acceptAll(&l, 6, now.Add(time.Millisecond))
	if !l.holds(6, followers, now.Add(2*time.Millisecond), time.Second) {
		t.Fatal("a revocation in term 5 held in term 6")
	}
}

func TestALeaseDoesNotHoldWhileAMembershipChangeIsInFlight(t *testing.T) {
	var l leaderLease
	followers := []raft.ServerID{"b", "c"}
	now := time.Now()
	acceptAll(&l, 2, now)
	resume := l.suspend()
	if l.holds(2, followers, now, time.Second) {
		t.Fatal("a lease holds during a membership change")
	}
	resume()
	if !l.holds(2, followers, now, time.Second) {
		t.Fatal("a lease does not hold once the change is over")
	}
}

// The lease must end before any follower may campaign: a prompted one
// after leaderSilence, any other after a heartbeat timeout.
func TestALeaseEndsBeforeAnyFollowerMayCampaign(t *testing.T) {
	for _, hb := range []time.Duration{100 * time.Millisecond, time.Second, 5 * time.Second} {
		tm := Timing{Heartbeat: hb}
		if d := leaseDuration(tm); d <= 0 || d >= leaderSilence(tm) || d >= hb {
			t.Errorf("heartbeat %v: lease %v, prompted silence %v", hb, d, leaderSilence(tm))
		}
	}
}

func TestAFollowerAboutToCampaignNoLongerAcknowledgesItsOldLeader(t *testing.T) {
	tr := &heartbeatTransport{}
	ok := raft.RPCResponse{Response: &raft.AppendEntriesResponse{Term: 7, Success: true}}
	req := func(term uint64) *raft.AppendEntriesRequest {
		return &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{}, Term: term}
	}
	if r := tr.guardAck(req(7), ok); r.Error != nil {
		t.Fatalf("acknowledgement refused before any campaign: %v", r.Error)
	}
	prev := tr.refuseAcksUpTo(7)
	if r := tr.guardAck(req(7), ok); !errors.Is(r.Error, errCampaigning) {
		t.Fatalf("an old term's message acknowledged while campaigning: %+v", r)
	}
	if r := tr.guardAck(req(8), ok); r.Error != nil {
		t.Fatalf("a newer leader's message refused: %v", r.Error)
	}
	refused := raft.RPCResponse{Response: &raft.AppendEntriesResponse{Term: 7}}
	if r := tr.guardAck(req(7), refused); r.Error != nil {
		t.Fatalf("a refusal became an error: %v", r.Error)
	}
	tr.restoreAcks(7, prev)
	if r := tr.guardAck(req(7), ok); r.Error != nil {
		t.Fatalf("still refused after the campaign was called off: %v", r.Error)
	}
	tr.refuseAcksUpTo(9)
	tr.restoreAcks(7, prev) // a later campaign's bound stays
	if r := tr.guardAck(req(8), ok); !errors.Is(r.Error, errCampaigning) {
		t.Fatal("calling off an earlier campaign undid a later one")
	}
	// A campaign that found a higher bound set raised nothing, and its
	// restore must not set that bound back (or raise it) either.
	p := tr.refuseAcksUpTo(5)
	tr.restoreAcks(5, p)
	if r := tr.guardAck(req(8), ok); !errors.Is(r.Error, errCampaigning) {
		t.Fatal("calling off an earlier campaign undid a later one")
	}
}
