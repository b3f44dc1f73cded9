package shard

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/fsm"
)

// Tuning is what an operator chooses about the replicas of a node. The
// rest of their configuration derives from it: Timing and Snapshots turn
// it into raft's timers and snapshot policy, so that a choice made once
// (one heartbeat, say) cannot disagree with the settings that follow from
// it (the leader lease). A zero field takes its value from DefaultTuning.
//
// A Tuning is a plain value: its methods neither block nor change it, and
// are safe for concurrent use.
type Tuning struct {
	// Heartbeat is raft's heartbeat and election timeout (Timing.Heartbeat).
	Heartbeat time.Duration
	// NoReadLease turns read leases off (Timing.NoReadLease).
	NoReadLease bool
	// SnapshotThreshold is how many log entries since a shard's last
	// snapshot trigger the next one, and SnapshotInterval how often that is
	// checked (raft adds up to as much again in jitter).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// LogStore is LogStoreShared or LogStorePerShard; empty keeps what the
	// data directory already uses (shared for a new one). It is passed on
	// as it is: "" is not replaced by a default.
	LogStore string
	// Limits bound what one session may hold; every node of a cluster must
	// run with the same.
	Limits fsm.Limits
}

// DefaultTuning is what a node runs with when the operator chooses
// nothing; its Timing and Snapshots are DefaultTiming and DefaultSnapshots.
var DefaultTuning = Tuning{
	Heartbeat:         DefaultTiming.Heartbeat,
	SnapshotThreshold: DefaultSnapshots.Threshold,
	SnapshotInterval:  DefaultSnapshots.Interval,
	Limits:            fsm.DefaultLimits,
}

// WithDefaults returns t with every zero field but LogStore set from
// DefaultTuning.
func (t Tuning) WithDefaults() Tuning {
	if t.Heartbeat <= 0 {
		t.Heartbeat = DefaultTuning.Heartbeat
	}
	if t.SnapshotThreshold == 0 {
		t.SnapshotThreshold = DefaultTuning.SnapshotThreshold
	}
	if t.SnapshotInterval <= 0 {
		t.SnapshotInterval = DefaultTuning.SnapshotInterval
	}
	if t.Limits == (fsm.Limits{}) {
		t.Limits = DefaultTuning.Limits
	}
	return t
}

// Timing derives the raft timers from t (with its defaults): the heartbeat
// as chosen, a leader lease of 0.8 of it (raft refuses a lease longer than
// the heartbeat timeout) and a commit interval of two of it; the apply and
// read bounds are DefaultTiming's.
func (t Tuning) Timing() Timing {
	t = t.WithDefaults()
	timing := DefaultTiming
	timing.Heartbeat = t.Heartbeat
	timing.LeaderLease = t.Heartbeat * 4 / 5
	timing.Commit = 2 * t.Heartbeat
	timing.NoReadLease = t.NoReadLease
	return timing
}

// Snapshots derives the snapshot policy from t (with its defaults): the
// threshold and interval as chosen, and a quarter more trailing entries
// than the threshold, 64 at least, so that a snapshot leaves enough of the
// log behind to catch up a follower without sending it one; the snapshot
// files retained are DefaultSnapshots'.
func (t Tuning) Snapshots() Snapshots {
	t = t.WithDefaults()
	s := DefaultSnapshots
	s.Threshold = t.SnapshotThreshold
	s.Interval = t.SnapshotInterval
	s.TrailingLogs = max(s.Threshold+s.Threshold/4, 64)
	return s
}

// Timing holds the raft timers of every shard. The defaults aim at an idle
// cost that stays low with many groups per node, and shard failover within
// a few seconds on a LAN when a leader stops answering.
type Timing struct {
	// Heartbeat is raft's HeartbeatTimeout and ElectionTimeout: a follower
	// that hears nothing for between one and two of these campaigns.
	Heartbeat time.Duration
	// LeaderLease is how long a leader keeps leading without hearing from a
	// quorum before it steps down. It is not a read lease. It must stay
	// above the longest gap between two heartbeats to one follower (half of
	// Heartbeat, see heartbeatPeriod) with room for scheduling delays, and
	// below Heartbeat, so that a leader cut off from its followers steps
	// down before any of them may campaign.
	LeaderLease time.Duration
	// Commit is raft's CommitTimeout: how often an idle leader sends each
	// follower an append of its own (every one to two of these), to retry
	// one that failed and to repeat the commit index. Lower values burn idle
	// CPU per shard. A follower learns of a commit sooner than this: from
	// the leader's next append under load, and otherwise from the next
	// heartbeat, which carries the commit index (commitbeat.go).
	Commit time.Duration
	// Apply bounds how long a write waits to be enqueued at the leader.
	Apply time.Duration
	// Read bounds a linearizable read's confirmation round.
	Read time.Duration
	// NoReadLease makes every linearizable read round confirm leadership
	// with heartbeats, never with the read lease (lease.go). The lease
	// assumes that each node's clock runs while it does; a machine that can
	// be suspended for longer than the lease, its clock stopped, should
	// not rely on it.
	NoReadLease bool
}

// DefaultTiming is the timing for a LAN cluster: hashicorp/raft's own
// default heartbeat timeout, about etcd's election timeout. Every raft
// group pays timers and messages at a rate set by Heartbeat whether or not
// it is written, so it sets most of an idle node's CPU. The price of a
// longer one is a shard whose leader is frozen or cut off waiting 1-3 s for
// a new one. A leader whose process died is replaced at once (failover.go),
// and planned moves and drains transfer leadership: neither waits.
// BENCHMARKS.md, "Idle cost", has the figures.
var DefaultTiming = Timing{
	Heartbeat:   time.Second,
	LeaderLease: 4 * time.Second / 5,
	Commit:      2 * time.Second,
	Apply:       2 * time.Second,
	Read:        2 * time.Second,
}

// Snapshots holds the snapshot and log-compaction policy.
type Snapshots struct {
	Threshold    uint64        // log entries since the last snapshot that trigger one
	Interval     time.Duration // how often the threshold is checked
	TrailingLogs uint64        // entries kept after a snapshot for slow followers
	Retain       int           // snapshot files kept on disk
}

// DefaultSnapshots keeps log replay after a restart short while leaving
// enough trailing entries to catch up a follower without a snapshot.
var DefaultSnapshots = Snapshots{Threshold: 8192, Interval: 60 * time.Second, TrailingLogs: 10240, Retain: 2}

func raftConfig(nodeID string, t Timing, s Snapshots) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(nodeID)
	c.HeartbeatTimeout = t.Heartbeat
	c.ElectionTimeout = t.Heartbeat
	c.LeaderLeaseTimeout = t.LeaderLease
	c.CommitTimeout = t.Commit
	c.MaxAppendEntries = maxAppendEntries
	c.BatchApplyCh = true
	c.ShutdownOnRemove = false
	c.NoLegacyTelemetry = true
	c.SnapshotThreshold = s.Threshold
	c.SnapshotInterval = s.Interval
	c.TrailingLogs = s.TrailingLogs
	return c
}

// maxAppendEntries caps the entries of one replication round, of one batch
// of proposals written to the leader's log and of one batch handed to the
// state machine. hashicorp/raft allocates slices of this length for every
// round and every commit, whatever they carry, and with 16 shards on three
// nodes a round carries about two entries: raft's default of 64 instead of
// 256 cut the bytes a node allocates by a sixth and stored 2–5 % more
// appends a second (BENCHMARKS.md). A follower that catches up takes 64
// entries a round.
const maxAppendEntries = 64
