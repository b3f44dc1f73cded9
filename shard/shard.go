// Package shard runs the raft groups of one node: each Shard is one
// hashicorp/raft instance with a file snapshot store of its own and its
// log in the node's shared write-ahead log (package raftlog) or, for data
// directories made before it, in a raft-boltdb file of its own. All of a
// node's shards share one TCP port through the Mux. A
// Shard applies commands, answers reads at the requested consistency level
// and reports its raft state; the Host holds all of a node's shards.
package shard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/raftlog"
)

// Config describes one local replica of a shard.
type Config struct {
	ShardID   uint32
	NodeID    string
	Dir       string // this replica's directory, e.g. DATA/shards/007
	Layer     *StreamLayer
	Limits    fsm.Limits
	Timing    Timing
	Snapshots Snapshots
	Logger    *slog.Logger
	// SharedLog is the node's shared raft log; nil gives the replica a
	// raft-boltdb file of its own in Dir.
	SharedLog *raftlog.Log
	// ReadIndexFrom asks the host at a leader's raft address for a read
	// index of this shard; with it, a follower serves linearizable reads
	// (see followerRead). Optional: without it only the leader does.
	ReadIndexFrom func(ctx context.Context, leaderAddr string, shard uint32) (uint64, error)
	// heartbeats sends this replica's heartbeats together with the other
	// replicas' of the node (see heartbeatSender); nil sends each alone.
	heartbeats *heartbeatSender

	// AddressOf resolves a peer's current raft address from its node id, so
	// a node that comes back on another IP stays reachable without a
	// configuration change. Optional.
	AddressOf raft.ServerAddressProvider
	// OnLeadership is called, on its own goroutine, whenever this replica
	// gains or loses leadership. Optional.
	OnLeadership func(shard uint32, leader bool)
}

// maxRPCsInFlight is the MaxRPCsInFlight of every replica's raft transport.
// At 1, hashicorp/raft sends each AppendEntries to a follower and waits for
// its answer before the next: values below 2 turn pipelining off.
//
// Its default, 2, pipelines replication, and that pipeline can deadlock.
// The transport sizes both of netPipeline's channels, inprogressCh and
// doneCh, at MaxRPCsInFlight-2, so at 2 both are unbuffered. When a follower
// answers with a newer term or Success=false, pipelineDecode returns without
// draining doneCh; decodeResponses takes the next request in flight, decodes
// its answer and parks on doneCh for good. The send loop in
// pipelineReplicate picks at random among its ready cases, the closed
// finishCh and any trigger (new entries, the commit timer): a send it makes
// after decodeResponses parked blocks on inprogressCh forever, and
// pipeline.Close, deferred in that same function, never runs. That
// follower's replication goroutine never ends. A newer term deposes the
// leader, and its Shutdown then waits for the goroutine forever: a drain
// hangs. Success=false in the same term (a follower failing to store
// entries, say) leaves the leader in charge but sending that follower no
// entry ever again, while the heartbeat goroutine, which runs apart, keeps
// the follower from calling the election that would repair it.
//
// Pipelining buys little here: with many concurrent writes each
// AppendEntries carries a batch, and BenchmarkApplyThreeReplicas shows no
// difference beyond its noise. This is a variable only so that tests can
// bring the pipelined transport back; nothing else may change it.
var maxRPCsInFlight = 1

// Shard is one local replica of one raft group, and the only owner of its
// raft instance: other packages change the group through Shard's methods.
//
// A Shard is safe for concurrent use. Apply, TransferLeadership and the
// membership changes block until raft answers (within the Timing bounds) or
// the replica closes; Read blocks until the replica may be read, ctx ends or
// the replica closes; the accessors (ID, IsLeader, Leader, Status, indexes)
// do not block. Close blocks until the replica's goroutines have ended.
type Shard struct {
	id           uint32
	nodeID       string
	timing       Timing
	logger       *slog.Logger
	onLeadership func(shard uint32, leader bool)

	fsm       *fsm.FSM
	raft      *raft.Raft
	transport *heartbeatTransport
	logStore  replicaLog
	leaderLog *leaderLog // between raft's log cache and logStore
	snapshots *raft.FileSnapshotStore

	// readyTerm is the term in which this node, as leader, has applied its
	// first command. Until then its FSM may miss entries of earlier terms and
	// it must not serve reads.
	readyTerm     atomic.Uint64
	reads         *readLoop     // rounds of leadership confirmation, while leading
	followerReads *readLoop     // rounds of read-index requests to the leader, while following
	readIndexAsks atomic.Uint64 // read-index requests this replica sent its leader
	prompting     atomic.Bool   // a campaignAfterLeaderGone is waiting its turn (failover.go)
	readIndexFrom func(ctx context.Context, leaderAddr string, shard uint32) (uint64, error)

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup
}

// Open starts the replica described by cfg, restoring its state from the
// latest snapshot and log on disk. A replica with no state stays empty until
// it is bootstrapped or a leader adds it.
func Open(cfg Config) (*Shard, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	logger := cfg.Logger.With("shard", cfg.ShardID)
	hl := newHCLogger(logger)
	logStore, err := openReplicaLog(cfg)
	if err != nil {
		return nil, fmt.Errorf("shard %d: open log store: %w", cfg.ShardID, err)
	}
	queued := newLeaderLog(logStore)
	logCache, err := raft.NewLogCache(logCacheEntries, queued)
	if err != nil {
		queued.Close()
		logStore.Close()
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, cfg.Snapshots.Retain, hl.Named("snapshot"))
	if err != nil {
		queued.Close()
		logStore.Close()
		return nil, fmt.Errorf("shard %d: open snapshot store: %w", cfg.ShardID, err)
	}
	nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:                cfg.Layer,
		MaxPool:               3,
		MaxRPCsInFlight:       maxRPCsInFlight,
		Timeout:               5 * time.Second,
		Logger:                hl.Named("transport"),
		ServerAddressProvider: cfg.AddressOf,
	})
	transport := newHeartbeatTransport(nt, cfg.ShardID, cfg.AddressOf, cfg.heartbeats)
	s := &Shard{
		id: cfg.ShardID, nodeID: cfg.NodeID, timing: cfg.Timing, logger: logger, onLeadership: cfg.OnLeadership,
		fsm: fsm.New(cfg.Limits), transport: transport, logStore: logStore, leaderLog: queued, snapshots: snaps,
		readIndexFrom: cfg.ReadIndexFrom,
		closed:        make(chan struct{}),
	}
	rc := raftConfig(cfg.NodeID, cfg.Timing, cfg.Snapshots)
	rc.Logger = hl
	leaderCh := make(chan bool, 8)
	rc.NotifyCh = leaderCh
	r, err := raft.NewRaft(rc, gatedFSM{FSM: s.fsm, log: queued}, logCache, logStore, snaps, transport)
	if err != nil {
		transport.Close()
		queued.Close()
		logStore.Close()
		return nil, fmt.Errorf("shard %d: start raft: %w", cfg.ShardID, err)
	}
	s.raft = r
	if maxRPCsInFlight <= 1 {
		// Pipelined appends bypass the transport's cut of the commit
		// index (leaderlog.go), so only unpipelined replicas queue.
		queued.setLeader(func() bool { return r.State() == raft.Leader })
	}
	transport.setCommitSource(r, logCache, queued.durableThrough)
	s.reads = newReadLoop(s, s.readIndex)
	s.followerReads = newReadLoop(s, s.leaderReadIndex)
	s.wg.Add(3)
	go s.watchLeadership(leaderCh)
	go s.reads.run()
	go s.followerReads.run()
	return s, nil
}

// ID is the shard number.
func (s *Shard) ID() uint32 { return s.id }

// FSM is the replica's state. Read it only after Read confirmed the level.
func (s *Shard) FSM() *fsm.FSM { return s.fsm }

// HasState reports whether the replica has any raft state on disk, i.e. it
// was bootstrapped or has joined a group.
func (s *Shard) HasState() (bool, error) {
	last, err := s.logStore.LastIndex()
	if err != nil {
		return false, err
	}
	return last > 0 || s.raft.LastIndex() > 0, nil
}

// Bootstrap makes the replica a member of a new group with the given voters.
// It is a no-op on a replica that already has state, so every placed replica
// of a new shard can call it with the same configuration.
func (s *Shard) Bootstrap(servers []raft.Server) error {
	err := s.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil
	}
	return err
}

// watchLeadership drains raft's leadership notifications (raft blocks on a
// full channel) and, on gaining leadership, applies a no-op so the read path
// knows when this leader's FSM has caught up with all earlier terms.
func (s *Shard) watchLeadership(ch <-chan bool) {
	defer s.wg.Done()
	for {
		select {
		case leader := <-ch:
			if leader {
				s.transport.progress.reset()
				s.transport.forgetBeats()
				s.logger.Info("became shard leader", "term", s.raft.CurrentTerm())
				s.wg.Add(1)
				go s.establishLeadership()
			} else {
				s.readyTerm.Store(0)
				s.logger.Info("lost shard leadership")
			}
			if s.onLeadership != nil {
				s.onLeadership(s.id, leader)
			}
		case <-s.closed:
			return
		}
	}
}

func (s *Shard) establishLeadership() {
	defer s.wg.Done()
	term := s.raft.CurrentTerm()
	noop := (&fsm.Command{Op: fsm.OpNoop}).Encode()
	for {
		err := s.await(s.raft.Apply(noop, s.timing.Apply))
		if err == nil {
			if s.raft.CurrentTerm() == term && s.raft.State() == raft.Leader {
				s.readyTerm.Store(term)
			}
			return
		}
		if !errors.Is(err, raft.ErrEnqueueTimeout) && !errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return // no longer leader or shutting down; a later term retries
		}
		select {
		case <-s.closed:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// await waits for f like f.Error(), but returns ErrShutdown once the replica
// closes: hashicorp/raft never answers a future that is still queued (its
// apply and verify channels are buffered) when it shuts down
// (TestCloseDuringAppliesAnswersEveryApply provokes it), and waiting on one
// would hang the caller, and Close, which waits for the shard's own
// goroutines, forever.
func (s *Shard) await(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-s.closed:
		select {
		case err := <-done: // answered after all: prefer the real outcome
			return err
		default:
			return ErrShutdown
		}
	}
}

// transferWaitRounds bounds how long (×25ms) Apply waits out a leadership
// transfer before answering ErrNotEnqueued.
const transferWaitRounds = 40

// Apply proposes cmd and waits until it is committed and applied. The error
// says whether the command may have been applied; see the package errors.
// Results the FSM decided (conflicts, not found) are not errors.
func (s *Shard) Apply(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	default:
	}
	// Checked before encoding: a follower's caller forwards the command.
	if err := s.canPropose(); err != nil {
		return nil, err
	}
	return s.applyEncoded(cmd.Encode())
}

// canPropose says why this replica cannot propose now: ErrShutdown, or a
// *NotLeaderError naming the leader it knows of.
func (s *Shard) canPropose() error {
	select {
	case <-s.closed:
		return ErrShutdown
	default:
	}
	if s.raft.State() != raft.Leader {
		return s.notLeader()
	}
	return nil
}

// applyEncoded is Apply for a command already encoded (a forwarded one);
// data must not be modified afterwards: raft keeps it in the log.
func (s *Shard) applyEncoded(data []byte) (*fsm.Result, error) {
	var f raft.ApplyFuture
	for attempt := 0; ; attempt++ {
		f = s.raft.Apply(data, s.timing.Apply)
		err := s.await(f)
		if err == nil {
			break
		}
		switch {
		case errors.Is(err, raft.ErrLeadershipTransferInProgress) && attempt < transferWaitRounds:
			// Refused before it was enqueued. A transfer takes a few
			// milliseconds: wait for it, then either propose again or
			// name the new leader so the caller can go there.
			select {
			case <-s.closed:
				return nil, ErrShutdown
			case <-time.After(25 * time.Millisecond):
			}
			if s.raft.State() != raft.Leader {
				return nil, s.notLeader()
			}
			continue
		case errors.Is(err, raft.ErrNotLeader):
			return nil, s.notLeader()
		case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return nil, ErrNotEnqueued
		default: // ErrLeadershipLost, ErrRaftShutdown or ErrShutdown with the entry in flight, …
			return nil, fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
		}
	}
	switch res := f.Response().(type) {
	case *fsm.Result:
		return res, nil
	case error: // committed, but the replica closed before applying it (gatedFSM)
		return nil, fmt.Errorf("%w: %v", ErrOutcomeUnknown, res)
	default:
		return nil, fmt.Errorf("shard %d: unexpected apply response %T", s.id, res)
	}
}

func (s *Shard) notLeader() error {
	addr, id := s.raft.LeaderWithID()
	return &NotLeaderError{Shard: s.id, LeaderID: string(id), LeaderAddr: string(addr)}
}

// IsLeader reports whether this replica currently leads its group.
func (s *Shard) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the current leader's node id and raft address, if known.
func (s *Shard) Leader() (id, addr string) {
	a, i := s.raft.LeaderWithID()
	return string(i), string(a)
}

// Snapshot asks raft for a snapshot now (used by operators and tests).
func (s *Shard) Snapshot() error { return s.raft.Snapshot().Error() }

// Close shuts the replica down: raft, its transport and its log store. It
// keeps the data on disk.
func (s *Shard) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		s.leaderLog.release()         // raft's shutdown waits for its state machine goroutine
		shutdown := s.raft.Shutdown() // tells raft's goroutines to stop
		// Close the connections before waiting for them: a follower
		// receiving a snapshot reads the leader's connection without a
		// deadline, and a leader that stalled mid-snapshot (paused, cut
		// off) would otherwise hold the shutdown forever.
		s.transport.CloseStreams()
		s.transport.Close()
		err = shutdown.Error()
		s.wg.Wait()
		s.leaderLog.Close()
		if cerr := s.logStore.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// LastContact is when this replica last heard from a leader (now, if it
// leads).
func (s *Shard) LastContact() time.Time {
	if s.IsLeader() {
		return time.Now()
	}
	return s.raft.LastContact()
}

// SnapshotSize is the size in bytes of the newest snapshot on disk (0 if
// none): roughly what a new replica receives when it joins.
func (s *Shard) SnapshotSize() int64 {
	size, _ := s.SnapshotInfo()
	return size
}

// TransferLeadership hands leadership to the voter id at addr, or to the
// most up-to-date voter when id is empty. Like Apply, it returns once the
// replica closes even if raft never answers the queued request.
func (s *Shard) TransferLeadership(id, addr string) error {
	if id == "" {
		return s.await(s.raft.LeadershipTransfer())
	}
	if err := s.transferTargetReady(raft.ServerID(id)); err != nil {
		return err
	}
	return s.await(s.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr)))
}

// transferLag is how far behind the leader's log a transfer target may be.
const transferLag = 256

// transferTargetReady refuses a transfer to a follower this leader has not
// heard from lately or that is far behind. hashicorp/raft first catches the
// target up, refusing every write meanwhile; a follower just back from a
// partition has its replication in a backoff of up to ten seconds, and a
// transfer started then can hold the shard's writes for that long.
func (s *Shard) transferTargetReady(id raft.ServerID) error {
	if !s.IsLeader() {
		return nil // raft answers that itself
	}
	last := s.raft.LastIndex()
	f, ok := s.transport.progress.progress(id, last, time.Now())
	switch {
	case !ok || time.Since(f.Contact) > 2*s.timing.Heartbeat:
		return fmt.Errorf("shard %d: %s has not answered lately; not moving leadership there", s.id, id)
	case f.LastLog+transferLag < last:
		return fmt.Errorf("shard %d: %s is %d entries behind; not moving leadership there yet", s.id, id, last-f.LastLog)
	}
	return nil
}
