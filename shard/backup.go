package shard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/fsm"
)

// ErrNotEmpty is returned by RestoreBackup when the shard holds sessions:
// a backup is restored only into an empty shard, never merged.
var ErrNotEmpty = errors.New("the shard holds sessions; a backup is restored only into an empty shard")

// BackupSnapshot is one replica's state as a snapshot stream (package fsm's
// format): Index and Term are the raft position it was taken at, Size the
// length of Body. The caller must close Body.
type BackupSnapshot struct {
	Index, Term uint64
	Size        int64
	Body        io.ReadCloser
}

// Backup snapshots this replica's state and opens the snapshot. At
// Linearizable it first waits, as a linearizable read does, until the
// replica has applied every write acknowledged before the call, so the
// snapshot holds them all; at Stale it takes the state the replica has,
// which serves a replica that has lost its quorum. The snapshot is taken
// on raft's FSM goroutine and written to the replica's snapshot store
// like a periodic one, so Apply goes on meanwhile. It blocks until the
// snapshot is written.
func (s *Shard) Backup(ctx context.Context, c Consistency) (*BackupSnapshot, error) {
	if err := s.Read(ctx, c); err != nil {
		return nil, err
	}
	f := s.raft.Snapshot()
	if err := s.await(f); err != nil {
		if errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return nil, ErrNotReady // a replica that has applied nothing yet
		}
		if errors.Is(err, raft.ErrRaftShutdown) {
			return nil, ErrShutdown
		}
		return nil, fmt.Errorf("shard %d: snapshot for backup: %w", s.id, err)
	}
	meta, body, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("shard %d: open snapshot for backup: %w", s.id, err)
	}
	return &BackupSnapshot{Index: meta.Index, Term: meta.Term, Size: meta.Size, Body: body}, nil
}

// RestoreBackup replaces the state of this shard, which this replica must
// lead and which must hold no session, with the snapshot stream body of
// size bytes taken at raft index index of another cluster. The caller must
// have checked that body decodes (a snapshot raft cannot restore stops the
// node). Raft stores it as a snapshot after index and after its own last
// index, so session versions stay below every later write's, and sends it
// to every follower; RestoreBackup returns once a majority holds it and a
// no-op command after it has been applied, which lets every replica serve
// linearizable reads of the restored state. Writes proposed meanwhile fail.
//
// A restore may end in ErrOutcomeUnknown when leadership is lost while it
// replicates. Retrying it is safe: want summarizes body, and a shard that
// already holds exactly that (the sessions and highest version of a
// backup, which no write after a restore can keep) is taken as restored.
func (s *Shard) RestoreBackup(ctx context.Context, index uint64, size int64, body io.Reader, want fsm.Summary) error {
	if err := s.Read(ctx, Leader); err != nil {
		return err
	}
	if have := s.fsm.Summary(); have.Sessions > 0 {
		if have == want {
			return nil // an earlier attempt restored it
		}
		return ErrNotEmpty
	}
	timeout := s.timing.Apply
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: index, Size: size}
	if err := s.raft.Restore(meta, body, timeout); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return s.notLeader() // refused before anything changed
		case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrEnqueueTimeout) && s.fsm.Len() > 0:
			// The state may be in place, on this replica at least.
			return fmt.Errorf("shard %d: restore backup: %w (%v)", s.id, ErrOutcomeUnknown, err)
		}
		return fmt.Errorf("shard %d: restore backup: %w", s.id, err)
	}
	// The restored FSM reports the old cluster's applied index, and the
	// no-op raft appended after it never reaches the FSM: a command after
	// the restore makes every replica's FSM learn its applied index, which
	// reads wait for. Should this leader lose leadership first, the next
	// leader's own no-op does the same, so the restore stands either way.
	if _, err := s.Apply(ctx, &fsm.Command{Op: fsm.OpNoop}); err != nil {
		s.logger.Warn("no-op after restoring a backup failed; the next leader's will do", "err", err)
	}
	return nil
}

// Backup snapshots the local replica of shard id; see Shard.Backup.
func (h *Host) Backup(ctx context.Context, id uint32, c Consistency) (*BackupSnapshot, error) {
	s, err := h.local(id)
	if err != nil {
		return nil, err
	}
	return s.Backup(ctx, c)
}

// RestoreBackup restores a backup into shard id, led by the local replica;
// see Shard.RestoreBackup.
func (h *Host) RestoreBackup(ctx context.Context, id uint32, index uint64, size int64, body io.Reader, want fsm.Summary) error {
	s, err := h.local(id)
	if err != nil {
		return err
	}
	return s.RestoreBackup(ctx, index, size, body, want)
}
