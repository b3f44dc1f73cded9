package fsm

import "testing"

// A session's own expiry overrides the node-wide idle rule: a ttl counts
// from its last write, a time is fixed, and clearing it hands the session
// back to the node-wide rule. Every replica removes the same sessions,
// because the leader's OpExpire carries the time it judges by.
func TestOwnExpiryOverridesTheIdleRule(t *testing.T) {
	f := New(DefaultLimits)
	at := func(c Command, ms int64) Command { c.At = ms; return c }
	applyLog(t, f, 1, at(appendCmd("ttl", msg("a", "user", "x")), 1_000))
	applyLog(t, f, 2, at(Command{Op: OpSetExpiry, Session: "ttl", TTL: 500}, 1_000))
	applyLog(t, f, 3, at(appendCmd("fixed", msg("a", "user", "x")), 1_000))
	applyLog(t, f, 4, at(Command{Op: OpSetExpiry, Session: "fixed", Expires: 10_000}, 1_000))
	applyLog(t, f, 5, at(appendCmd("idle", msg("a", "user", "x")), 1_000))
	if s, _ := f.Get("ttl"); func() bool { e, ok := s.ExpiresAt(); return !ok || e != 1_500 }() {
		t.Fatal("a ttl of 500 ms after a write at 1000 does not expire at 1500")
	}
	applyLog(t, f, 6, at(mergeCmd("ttl", "k", "1"), 1_400)) // a write pushes a ttl back
	if f.AnyExpired(1_600, 0) {
		t.Fatal("something is due at 1600 without an idle rule")
	}
	// The idle rule (written before 5000) spares sessions with their own expiry.
	r := applyLog(t, f, 7, Command{Op: OpExpire, At: 5_000, Before: 5_000})
	if _, ok := f.Get("idle"); ok || r.Expired != 2 {
		t.Fatalf("expire at 5000: %d removed, idle session kept: %v", r.Expired, ok)
	}
	if _, ok := f.Get("ttl"); ok {
		t.Fatal("the session whose ttl ran out at 1900 is still there")
	}
	if _, ok := f.Get("fixed"); !ok {
		t.Fatal("a session due at 10000 was removed at 5000 by the idle rule")
	}
	// Clearing the expiry returns the session to the idle rule.
	applyLog(t, f, 8, at(Command{Op: OpSetExpiry, Session: "fixed"}, 6_000))
	if f.AnyExpired(20_000, 0) || !f.AnyExpired(20_000, 7_000) {
		t.Fatal("a cleared expiry did not hand the session back to the idle rule")
	}
	if r := applyLog(t, f, 9, at(Command{Op: OpSetExpiry, Session: "nobody", TTL: 1}, 6_000)); r.Status != StatusNotFound {
		t.Fatalf("an expiry for a missing session: %v", r.Status)
	}
	if r := applyLog(t, f, 10, at(Command{Op: OpSetExpiry, Session: "fixed", TTL: 1, Expires: 1}, 6_000)); r.Status != StatusInvalid {
		t.Fatalf("an expiry with a ttl and a time: %v", r.Status)
	}
}
