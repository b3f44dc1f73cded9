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
	// began: the leader confirms that it still leads, after the read
	// arrived (by its read lease, lease.go, or else with a round of
	// heartbeats to a quorum), and waits until it has applied the commit
	// index.
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
// reads FSM(). Leader fails with a *NotLeaderError when another node leads.
// Linearizable is served by the leader, or by a follower that got a read
// index from the leader and has applied it (see followerRead); it fails
// with a *NotLeaderError when neither can be done, so the caller may send
// the read to the leader.
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
		if s.raft.State() != raft.Leader && s.readIndexFrom != nil {
			return s.followerRead(ctx)
		}
		index, err := s.reads.wait(ctx)
		if err != nil {
			return err
		}
		if err := s.fsm.WaitApplied(ctx, index); err != nil {
			return fmt.Errorf("shard %d: waiting to apply index %d: %w", s.id, index, err)
		}
		return nil
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
// leadership confirmation (on the leader) or read-index request to the
// leader (on a follower). A read never joins a round that started before it
// arrived, so a heartbeat answered before the read cannot confirm it.
type readLoop struct {
	s     *Shard
	fetch func() (uint64, error) // one round: a read index proven current after it started
	kick  chan struct{}

	mu      sync.Mutex
	pending *readRound
}

type readRound struct {
	done  chan struct{}
	index uint64 // the read index: reads may be served once it is applied
	err   error
}

func newReadLoop(s *Shard, fetch func() (uint64, error)) *readLoop {
	return &readLoop{s: s, fetch: fetch, kick: make(chan struct{}, 1), pending: &readRound{done: make(chan struct{})}}
}

// wait joins the next round and returns its read index.
func (l *readLoop) wait(ctx context.Context) (uint64, error) {
	l.mu.Lock()
	r := l.pending
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default: // a round is already requested; it will include r
	}
	select {
	case <-r.done:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
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
		r.index, r.err = l.fetch()
		close(r.done)
	}
}

// readIndex is one read-index round: it proves that this node still leads,
// after the round started, by its read lease (lease.go) or else by a round
// of heartbeats, and returns the commit index from before that proof. Any
// replica that has applied that index reflects every write acknowledged
// before the round started.
func (s *Shard) readIndex() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timing.Read)
	defer cancel()
	if err := s.waitReady(ctx); err != nil {
		return 0, err
	}
	term := s.raft.CurrentTerm()
	index := s.raft.CommitIndex()
	if s.leaseHolds(term) && s.raft.State() == raft.Leader && s.raft.CurrentTerm() == term {
		s.transport.countRead(true)
		return index, nil // no other leader can have committed since index
	}
	s.transport.countRead(false)
	done := s.transport.verifying()
	err := s.await(s.raft.VerifyLeader())
	done()
	if err != nil {
		return 0, s.notLeader()
	}
	if s.raft.CurrentTerm() != term || s.raft.State() != raft.Leader {
		return 0, s.notLeader()
	}
	return index, nil
}
