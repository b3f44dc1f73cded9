package shard

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Consistency is the guarantee a read asks for.
type Consistency uint8

const (
	// Linearizable reads reflect every write acknowledged before the read
	// began: the leader confirms with a quorum that it still leads, after the
	// read arrived, and waits until it has applied the commit index.
	Linearizable Consistency = iota
	// Leader reads are served by the node that believes it leads, with no
	// round trip. A deposed leader that has not noticed yet may serve
	// slightly old data.
	Leader
	// Stale reads are served by any replica from whatever it has applied.
	Stale
)

var consistencyNames = [...]string{"linearizable", "leader", "stale"}

func (c Consistency) String() string {
	if int(c) < len(consistencyNames) {
		return consistencyNames[c]
	}
	return fmt.Sprintf("consistency(%d)", c)
}

// ParseConsistency parses a level name; the empty string is Linearizable.
func ParseConsistency(s string) (Consistency, error) {
	if s == "" {
		return Linearizable, nil
	}
	for i, n := range consistencyNames {
		if s == n {
			return Consistency(i), nil
		}
	}
	return 0, fmt.Errorf("unknown consistency %q: use linearizable, leader or stale", s)
}

// Read waits until this replica may answer a read at level c, then the caller
// reads FSM(). For Linearizable and Leader it fails with a *NotLeaderError
// when another node leads.
func (s *Shard) Read(ctx context.Context, c Consistency) error {
	switch c {
	case Stale:
		return nil
	case Leader:
		if s.raft.State() != raft.Leader {
			return s.notLeader()
		}
		return s.waitReady(ctx)
	default:
		return s.reads.wait(ctx)
	}
}

// waitReady waits until this leader has applied an entry of its own term, so
// its FSM holds every write committed by earlier leaders.
func (s *Shard) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(s.timing.Read)
	for {
		term := s.raft.CurrentTerm()
		if s.raft.State() != raft.Leader {
			return s.notLeader()
		}
		if s.readyTerm.Load() == term {
			return nil
		}
		if time.Now().After(deadline) {
			return ErrNotReady
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			return ErrShutdown
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// readLoop coalesces linearizable reads, as etcd's linearizableReadLoop
// does: every read waiting when a round starts shares that round's single
// leadership confirmation. A read never joins a round that started before it
// arrived, so a heartbeat answered before the read cannot confirm it.
type readLoop struct {
	s    *Shard
	kick chan struct{}

	mu      sync.Mutex
	pending *readRound
}

type readRound struct {
	done chan struct{}
	err  error
}

func newReadLoop(s *Shard) *readLoop {
	return &readLoop{s: s, kick: make(chan struct{}, 1), pending: &readRound{done: make(chan struct{})}}
}

func (l *readLoop) wait(ctx context.Context) error {
	l.mu.Lock()
	r := l.pending
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default: // a round is already requested; it will include r
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *readLoop) run() {
	defer l.s.wg.Done()
	for {
		select {
		case <-l.kick:
		case <-l.s.closed:
			l.mu.Lock()
			r := l.pending
			l.mu.Unlock()
			r.err = ErrShutdown
			close(r.done)
			return
		}
		l.mu.Lock()
		r := l.pending
		l.pending = &readRound{done: make(chan struct{})}
		l.mu.Unlock()
		r.err = l.s.confirmRead()
		close(r.done)
	}
}

// confirmRead is one read-index round: it returns nil once the FSM reflects
// every write committed before the round started, or an error if this node
// could not prove it still leads.
func (s *Shard) confirmRead() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timing.Read)
	defer cancel()
	if err := s.waitReady(ctx); err != nil {
		return err
	}
	term := s.raft.CurrentTerm()
	index := s.raft.CommitIndex()
	if err := s.await(s.raft.VerifyLeader()); err != nil {
		return s.notLeader()
	}
	if s.raft.CurrentTerm() != term || s.raft.State() != raft.Leader {
		return s.notLeader()
	}
	if err := s.fsm.WaitApplied(ctx, index); err != nil {
		return fmt.Errorf("shard %d: waiting to apply index %d: %w", s.id, index, err)
	}
	return nil
}
