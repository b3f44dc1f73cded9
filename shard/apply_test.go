package shard_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// single starts one host with one bootstrapped voter replica of shard 0 and
// waits until it leads.
func single(t testing.TB, tune func(*shard.HostConfig)) (*testHost, *shard.Shard) {
	t.Helper()
	h := newTestHost(t, "solo", 1, tune)
	s := h.open(0)
	if err := s.Bootstrap([]raft.Server{h.host.Self()}); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, s)
	return h, s
}

// waitLeader waits until s leads and is ready for reads.
func waitLeader(t testing.TB, s *shard.Shard) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		if !s.IsLeader() {
			return errors.New("replica does not lead")
		}
		return s.Read(context.Background(), shard.Leader)
	})
}

func TestApplyOnAFollowerNamesTheLeader(t *testing.T) {
	c := makeCluster(t, 3, 1, 0)
	lead := c.leader(0)
	leadHost := c.hostOf(lead)
	for _, f := range c.followers(0, lead) {
		res, err := f.Apply(context.Background(), appendCmd("s1", "m1"))
		var nl *shard.NotLeaderError
		if !errors.As(err, &nl) || res != nil {
			t.Fatalf("Apply on follower = %v, %v; want *NotLeaderError", res, err)
		}
		if nl.Shard != 0 || nl.LeaderID != leadHost.id || nl.LeaderAddr != leadHost.addr {
			t.Fatalf("NotLeaderError %+v, want leader %s at %s", nl, leadHost.id, leadHost.addr)
		}
		if errors.Is(err, shard.ErrNoLeader) {
			t.Fatal("NotLeaderError naming a leader matches ErrNoLeader")
		}
	}
	// Nothing reached the log: the session does not exist anywhere.
	mustAppend(t, lead, "other", "m1")
	c.converged(0)
	for _, r := range c.replicas(0) {
		if _, ok := r.FSM().Get("s1"); ok {
			t.Fatal("an append refused by a follower was applied")
		}
	}
}

func TestApplyWithoutAnyLeaderIsErrNoLeader(t *testing.T) {
	h := newTestHost(t, "lonely", 1, nil)
	s := h.open(0) // never bootstrapped: no configuration, no leader
	if ok, err := s.HasState(); ok || err != nil {
		t.Fatalf("HasState of a fresh replica = %v, %v", ok, err)
	}
	_, err := s.Apply(context.Background(), appendCmd("s1", "m1"))
	var nl *shard.NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID != "" || !errors.Is(err, shard.ErrNoLeader) {
		t.Fatalf("Apply with no leader = %v; want a NotLeaderError matching ErrNoLeader", err)
	}
	if h.host.Ready() {
		t.Fatal("host is ready although its replica knows no leader")
	}
}

// TestFSMOutcomesAreResultsNotErrors checks that conflicts, missing sessions
// and invalid commands come back as *fsm.Result, decided by the FSM, with a
// nil error and no change to the session.
func TestFSMOutcomesAreResultsNotErrors(t *testing.T) {
	_, s := single(t, nil)
	ctx := context.Background()
	first := mustAppend(t, s, "s1", "m1")
	if !first.Created || first.Version == 0 || first.Messages[0].Seq != 1 {
		t.Fatalf("first append result %+v", first)
	}
	before, _ := s.FSM().Get("s1")

	put := func(ifVersion uint64) *fsm.Command {
		return &fsm.Command{Op: fsm.OpPutField, Session: "s1", At: time.Now().UnixMilli(),
			HasIfVersion: true, IfVersion: ifVersion, Field: "pendingMatch", Value: json.RawMessage(`{"id":1}`)}
	}
	for _, c := range []struct {
		name string
		cmd  *fsm.Command
		want fsm.Status
	}{
		{"stale ifVersion", put(first.Version + 100), fsm.StatusVersionMismatch},
		{"id reused with other content", &fsm.Command{Op: fsm.OpAppendMessages, Session: "s1", At: 1,
			Messages: []fsm.NewMessage{{ID: "m1", Role: "user", Content: "different"}}}, fsm.StatusIDConflict},
		{"delete absent session", &fsm.Command{Op: fsm.OpDeleteSession, Session: "nope", At: 1}, fsm.StatusNotFound},
		{"bad session id", appendCmd("no spaces allowed", "m1"), fsm.StatusInvalid},
	} {
		res, err := s.Apply(ctx, c.cmd)
		if err != nil {
			t.Fatalf("%s: error %v, want a result", c.name, err)
		}
		if res.Status != c.want {
			t.Fatalf("%s: status %v (%s), want %v", c.name, res.Status, res.Detail, c.want)
		}
	}
	if after, _ := s.FSM().Get("s1"); after != before {
		t.Fatal("a refused command changed the session")
	}
	// The matching version applies.
	res, err := s.Apply(ctx, put(first.Version))
	if err != nil || res.Status != fsm.StatusOK || res.Version <= first.Version {
		t.Fatalf("conditional put with the current version = %+v, %v", res, err)
	}
	// A replayed append is answered from the stored message, unchanged.
	replay := mustAppend(t, s, "s1", "m1")
	if replay.Changed || replay.Messages[0].Seq != 1 || replay.Version != res.Version {
		t.Fatalf("replayed append %+v", replay)
	}
}

func TestApplyHonoursContextAndShutdown(t *testing.T) {
	h, s := single(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Apply(ctx, appendCmd("s1", "m1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a cancelled context = %v", err)
	}
	if _, ok := s.FSM().Get("s1"); ok {
		t.Fatal("a command with a cancelled context was applied")
	}
	if _, err := h.host.Apply(context.Background(), 3, appendCmd("s1", "m1")); !isNotHosted(err, 3) {
		t.Fatalf("Host.Apply on an unhosted shard = %v", err)
	}
	if _, err := h.host.Read(context.Background(), 3, shard.Stale); !isNotHosted(err, 3) {
		t.Fatalf("Host.Read on an unhosted shard = %v", err)
	}
	h.stop()
	if _, err := s.Apply(context.Background(), appendCmd("s1", "m1")); !errors.Is(err, shard.ErrShutdown) {
		t.Fatalf("Apply after Close = %v, want ErrShutdown", err)
	}
	if err := s.Read(context.Background(), shard.Linearizable); err == nil {
		t.Fatal("linearizable read after Close succeeded")
	}
}

func isNotHosted(err error, id uint32) bool {
	var nh *shard.NotHostedError
	return errors.As(err, &nh) && nh.Shard == id
}

// TestExpireIdleRemovesOnlyIdleSessions checks the TTL sweep: the cutoff is
// the leader's clock minus the TTL, carried in the command.
func TestExpireIdleRemovesOnlyIdleSessions(t *testing.T) {
	h, s := single(t, nil)
	old := appendCmd("old", "m1")
	old.At = time.Now().Add(-2 * time.Hour).UnixMilli()
	if res, err := s.Apply(context.Background(), old); err != nil || res.Status != fsm.StatusOK {
		t.Fatalf("append old: %+v, %v", res, err)
	}
	mustAppend(t, s, "fresh", "m1")
	n, err := h.host.ExpireIdle(context.Background(), time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("ExpireIdle = %d, %v; want 1", n, err)
	}
	if _, ok := s.FSM().Get("old"); ok {
		t.Fatal("idle session survived")
	}
	if _, ok := s.FSM().Get("fresh"); !ok {
		t.Fatal("fresh session expired")
	}
}

func TestParseConsistency(t *testing.T) {
	for in, want := range map[string]shard.Consistency{
		"": shard.Linearizable, "linearizable": shard.Linearizable, "leader": shard.Leader, "stale": shard.Stale,
	} {
		got, err := shard.ParseConsistency(in)
		if err != nil || got != want {
			t.Errorf("ParseConsistency(%q) = %v, %v", in, got, err)
		}
		if in != "" && got.String() != in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
	for _, in := range []string{"strong", "Linearizable", "none"} {
		if _, err := shard.ParseConsistency(in); err == nil {
			t.Errorf("ParseConsistency(%q) succeeded", in)
		}
	}
}
