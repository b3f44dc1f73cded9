package shard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/raftlog"
	"github.com/sessiond/sessiond/shard"
)

// writeMix applies a mix of every write command to s and returns how many
// messages session "chat" holds afterwards.
func writeMix(t *testing.T, s *shard.Shard, rounds int) int {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < rounds; i++ {
		mustAppend(t, s, "chat", fmt.Sprintf("m%d", i))
		mustAppend(t, s, fmt.Sprintf("s%d", i%7), fmt.Sprintf("m%d", i))
		for _, cmd := range []*fsm.Command{
			{Op: fsm.OpMergeFields, Session: "chat", At: time.Now().UnixMilli(),
				Fields: map[string]json.RawMessage{"round": json.RawMessage(strconv.Itoa(i)), "gone": nil}},
			{Op: fsm.OpPatchFields, Session: fmt.Sprintf("s%d", i%7), At: time.Now().UnixMilli(),
				Patch: json.RawMessage(fmt.Sprintf(`{"criteria":{"to":"LIS","n":%d}}`, i))},
			{Op: fsm.OpPutField, Session: "chat", At: time.Now().UnixMilli(), Field: "pendingMatch",
				Value: json.RawMessage(fmt.Sprintf(`{"id":%d}`, i))},
		} {
			if res, err := s.Apply(ctx, cmd); err != nil || res.Status != fsm.StatusOK {
				t.Fatalf("%v: %+v, %v", cmd.Op, res, err)
			}
		}
	}
	if res, err := s.Apply(ctx, &fsm.Command{Op: fsm.OpDeleteSession, Session: "s6", At: 1}); err != nil ||
		(rounds > 6 && res.Status != fsm.StatusOK) {
		t.Fatalf("delete: %+v, %v", res, err)
	}
	return rounds
}

// reopen closes h, starts it again on the same address and data dir, opens
// shard 0 without bootstrapping it, and waits for it to lead.
func reopen(t *testing.T, h *testHost) *shard.Shard {
	t.Helper()
	h.stop()
	h.start()
	existing, err := h.host.ExistingShards()
	if err != nil || len(existing) != 1 || existing[0] != 0 {
		t.Fatalf("ExistingShards after restart = %v, %v", existing, err)
	}
	s := h.open(0)
	if ok, err := s.HasState(); !ok || err != nil {
		t.Fatalf("HasState after restart = %v, %v", ok, err)
	}
	waitLeader(t, s)
	return s
}

// TestReopenedHostServesIdenticalState closes a single-voter host and
// starts it on the same data dir: every session comes back byte for byte,
// and writes continue where they left off.
func TestReopenedHostServesIdenticalState(t *testing.T) {
	h, s := single(t, nil)
	n := writeMix(t, s, 20)
	before := dumpSessions(t, s.FSM())
	chat, _ := s.FSM().Get("chat")

	s = reopen(t, h)
	if err := s.Read(context.Background(), shard.Linearizable); err != nil {
		t.Fatal(err)
	}
	if after := dumpSessions(t, s.FSM()); !bytes.Equal(after, before) {
		t.Fatalf("state after restart differs: %d bytes before, %d after", len(before), len(after))
	}
	got, _ := s.FSM().Get("chat")
	if got.Version != chat.Version {
		t.Fatalf("version after restart %d, before %d", got.Version, chat.Version)
	}
	res := mustAppend(t, s, "chat", "after-restart")
	if res.Messages[0].Seq != uint64(n+1) || res.Version <= chat.Version {
		t.Fatalf("append after restart: seq %d version %d", res.Messages[0].Seq, res.Version)
	}
	// Re-bootstrapping a replica that has state is a no-op, not a second group.
	if err := s.Bootstrap([]raft.Server{h.host.Self()}); err != nil {
		t.Fatalf("Bootstrap on a replica with state: %v", err)
	}
}

// TestSnapshotsTruncateTheLogAndRestoreIdenticalState writes enough under a
// small snapshot threshold that raft takes several snapshots and compacts
// the log, then restarts from snapshot plus log tail.
func TestSnapshotsTruncateTheLogAndRestoreIdenticalState(t *testing.T) {
	for _, kind := range []string{shard.LogStoreShared, shard.LogStorePerShard} {
		t.Run(kind, func(t *testing.T) { snapshotsTruncateTheLog(t, kind) })
	}
}

func snapshotsTruncateTheLog(t *testing.T, kind string) {
	snaps := shard.Snapshots{Threshold: 64, Interval: 50 * time.Millisecond, TrailingLogs: 32, Retain: 2}
	h, s := single(t, func(c *shard.HostConfig) { c.Snapshots = snaps; c.LogStore = kind })

	// Write in bursts and wait after each for raft to snapshot, so that
	// several snapshots are taken (the threshold is checked every interval).
	var lastSnap uint64
	snapshotsSeen := 0
	for burst := 0; burst < 4; burst++ {
		writeMix(t, s, 25) // 25 × 5 commands, well over the threshold
		eventually(t, 20*time.Second, func() error {
			idx := snapshotIndex(t, s)
			if idx <= lastSnap {
				return fmt.Errorf("no new snapshot after index %d", lastSnap)
			}
			lastSnap = idx
			return nil
		})
		snapshotsSeen++
	}
	// An explicit snapshot also works (operators use it).
	mustAppend(t, s, "chat", "before-manual-snapshot")
	if err := s.Snapshot(); err != nil {
		t.Fatalf("Shard.Snapshot: %v", err)
	}
	snapshotsSeen++
	if idx := snapshotIndex(t, s); idx <= lastSnap {
		t.Fatalf("manual snapshot at %d, not after %d", idx, lastSnap)
	}
	mustAppend(t, s, "chat", "after-last-snapshot") // replayed from the log tail
	before := dumpSessions(t, s.FSM())
	chat, _ := s.FSM().Get("chat")
	h.stop()

	dir := filepath.Join(h.dir, "shards", "000")
	files, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 || len(files) > snaps.Retain {
		t.Fatalf("%d snapshot dirs on disk after %d snapshots, want 1..%d", len(files), snapshotsSeen, snaps.Retain)
	}
	first, last := logRange(t, h.dir, kind, 0)
	if first <= 1 || last-first+1 > snaps.Threshold+snaps.TrailingLogs+16 {
		t.Fatalf("log holds [%d, %d]: not truncated", first, last)
	}
	t.Logf("%d snapshots, log truncated to [%d, %d]", snapshotsSeen, first, last)

	h.start()
	s = h.open(0)
	waitLeader(t, s)
	if after := dumpSessions(t, s.FSM()); !bytes.Equal(after, before) {
		t.Fatalf("state restored from snapshot differs: %d bytes before, %d after", len(before), len(after))
	}
	res := mustAppend(t, s, "chat", "after-restore")
	if want := uint64(chat.MessageCount() + 1); res.Messages[0].Seq != want {
		t.Fatalf("append after restore got seq %d, want %d", res.Messages[0].Seq, want)
	}
}

func snapshotIndex(t *testing.T, s *shard.Shard) uint64 {
	t.Helper()
	idx, err := strconv.ParseUint(shard.RaftStats(s)["last_snapshot_index"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// TestReplicaFarBehindCatchesUpFromASnapshot stops a follower, lets the
// others write and compact their logs past what it has, and restarts it:
// the leader must send it a snapshot through the mux (InstallSnapshot), after
// which it holds the same state as the others.
func TestReplicaFarBehindCatchesUpFromASnapshot(t *testing.T) {
	snaps := shard.Snapshots{Threshold: 64, Interval: 50 * time.Millisecond, TrailingLogs: 16, Retain: 2}
	c := makeClusterWith(t, 3, 1, func(hc *shard.HostConfig) { hc.Snapshots = snaps }, 0)
	lead := c.leader(0)
	mustAppend(t, lead, "chat", "m0")
	c.converged(0)
	lagging := c.hostOf(c.followers(0, lead)[0])
	lagging.stop()

	for i := 1; i <= 200; i++ {
		if _, err := c.apply(0, appendCmd("chat", fmt.Sprintf("m%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	lead = c.leader(0)
	if err := lead.Snapshot(); err != nil {
		t.Fatal(err)
	}
	lastSnap := snapshotIndex(t, lead)
	lagging.start()
	r := lagging.open(0)
	c.converged(0)
	// The leader kept only 16 entries behind its snapshot, so the restarted
	// replica (3 entries) could only catch up by installing that snapshot.
	if idx := snapshotIndex(t, r); idx != lastSnap {
		t.Fatalf("restarted replica's last snapshot is at %d, the leader's at %d: it did not install the leader's snapshot", idx, lastSnap)
	}
	s, ok := r.FSM().Get("chat")
	if !ok || s.MessageCount() != 201 {
		t.Fatalf("caught-up replica shows %v", s)
	}
}

// logRange reads the first and last index of shard id's raft log from a
// stopped node's data directory.
func logRange(t *testing.T, dataDir, kind string, id uint32) (first, last uint64) {
	t.Helper()
	var store raft.LogStore
	if kind == shard.LogStorePerShard {
		bs, err := raftboltdb.NewBoltStore(filepath.Join(dataDir, "shards", fmt.Sprintf("%03d", id), "raft.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer bs.Close()
		store = bs
	} else {
		l, err := raftlog.Open(filepath.Join(dataDir, "raftlog"), raftlog.Options{Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		store = l.Shard(id)
	}
	first, _ = store.FirstIndex()
	last, _ = store.LastIndex()
	return first, last
}
