package shard

import (
	"errors"
	"fmt"
)

// The errors a shard operation can end with. They tell a caller whether the
// write may have happened, which decides if retrying is safe:
//
//   - *NotHostedError: this node has no replica of the shard; nothing was
//     proposed.
//   - *NotLeaderError, ErrNoLeader, ErrNotEnqueued, and ErrShutdown returned
//     before the command was proposed: the command was never appended to
//     the log; retrying (elsewhere) is safe. A replica that shuts down while
//     a command is in flight answers ErrOutcomeUnknown instead.
//   - ErrOutcomeUnknown: the command was appended but this node lost
//     leadership (or timed out) before learning whether it committed. It may
//     still commit in the next leader's term. Only an idempotent retry (same
//     message ids) is safe.
var (
	ErrNoLeader       = errors.New("shard has no leader")
	ErrNotEnqueued    = errors.New("shard leader is busy; the command was not enqueued")
	ErrOutcomeUnknown = errors.New("leadership was lost before the command's outcome was known")
	ErrShutdown       = errors.New("shard is shutting down")
	ErrNotReady       = errors.New("new shard leader is not ready to serve reads yet")
)

// NotLeaderError says which node leads the shard, when known.
type NotLeaderError struct {
	Shard      uint32
	LeaderID   string
	LeaderAddr string // raft address
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return fmt.Sprintf("shard %d: this node is not the leader and no leader is known", e.Shard)
	}
	return fmt.Sprintf("shard %d: this node is not the leader; %s is", e.Shard, e.LeaderID)
}

// Unwrap lets errors.Is(err, ErrNoLeader) match when no leader is known.
func (e *NotLeaderError) Unwrap() error {
	if e.LeaderID == "" {
		return ErrNoLeader
	}
	return nil
}

// NotHostedError means this node has no replica of the shard.
type NotHostedError struct{ Shard uint32 }

func (e *NotHostedError) Error() string {
	return fmt.Sprintf("shard %d has no replica on this node", e.Shard)
}
