package shard_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// A backup taken on a follower holds every write acknowledged before it;
// restored into the leader of another, empty group it reaches every
// replica, and later writes get versions above every restored one.
func TestBackupOnAFollowerRestoresIntoEveryReplicaOfAnotherGroup(t *testing.T) {
	src := makeCluster(t, 3, 1, 0)
	lead := src.leader(0)
	for i := 0; i < 20; i++ {
		mustAppend(t, lead, fmt.Sprintf("s%d", i%4), fmt.Sprintf("m%d", i))
	}
	follower := src.followers(0, lead)[0]
	acked := lead.FSM().AppliedIndex()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// A follower learns the commit index with the leader's next append;
	// until then it refuses, naming the leader, as a read does.
	var snap *shard.BackupSnapshot
	eventually(t, 10*time.Second, func() (err error) {
		snap, err = follower.Backup(ctx, shard.Linearizable)
		return err
	})
	data, err := io.ReadAll(snap.Body)
	snap.Body.Close()
	if err != nil || int64(len(data)) != snap.Size {
		t.Fatalf("read backup: %d bytes of %d, %v", len(data), snap.Size, err)
	}
	if snap.Index < acked {
		t.Fatalf("backup at index %d, but the leader had applied %d before it began", snap.Index, acked)
	}
	want := dumpSessions(t, lead.FSM())

	dst := makeCluster(t, 3, 1, 0)
	summary := lead.FSM().Summary()
	// A leader lost while restoring answers ErrOutcomeUnknown; the retry
	// the contract allows goes to whichever replica leads then.
	restore := func() error {
		return dst.leader(0).RestoreBackup(ctx, snap.Index, snap.Size, bytes.NewReader(data), summary)
	}
	eventually(t, 30*time.Second, restore)
	// A retry after a restore that did happen finds it done.
	eventually(t, 30*time.Second, restore)
	dst.converged(0)
	for _, r := range dst.replicas(0) {
		eventually(t, 10*time.Second, func() error { return r.Read(ctx, shard.Linearizable) })
		if got := dumpSessions(t, r.FSM()); !bytes.Equal(got, want) {
			t.Fatalf("a replica holds other sessions than the backup")
		}
	}
	res, err := dst.apply(0, appendCmd("s0", "after-restore"))
	if err != nil || res.Status != fsm.StatusOK {
		t.Fatalf("append after restore: %v %+v", err, res)
	}
	if res.Version <= snap.Index {
		t.Fatalf("write after restore has version %d, not above the backup's index %d", res.Version, snap.Index)
	}
	if s, _ := dst.leader(0).FSM().Get("s0"); len(s.Messages()) != 6 {
		t.Fatalf("s0 holds %d messages after one more append, want 6", len(s.Messages()))
	}
}

// A backup is never merged into a shard that holds sessions.
func TestRestoreBackupRefusesAShardWithSessions(t *testing.T) {
	c := makeCluster(t, 1, 1, 0)
	lead := c.leader(0)
	mustAppend(t, lead, "kept", "m1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	snap, err := lead.Backup(ctx, shard.Stale)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Body.Close()
	if err := lead.RestoreBackup(ctx, snap.Index, snap.Size, snap.Body, fsm.Summary{Sessions: 2, MaxVersion: snap.Index}); !errors.Is(err, shard.ErrNotEmpty) {
		t.Fatalf("restore into a shard with a session = %v, want ErrNotEmpty", err)
	}
	if s, ok := lead.FSM().Get("kept"); !ok || len(s.Messages()) != 1 {
		t.Fatalf("the refused restore changed the shard")
	}
}
