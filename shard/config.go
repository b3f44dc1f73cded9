package shard

import (
	"time"

	"github.com/hashicorp/raft"
)

// Timing holds the raft timers of every shard. The defaults aim at
// shard failover well under a second on a LAN, and an idle cost that stays
// low with many groups per node.
type Timing struct {
	// Heartbeat is raft's HeartbeatTimeout and ElectionTimeout: a follower
	// that hears nothing for between one and two of these campaigns.
	Heartbeat time.Duration
	// LeaderLease is how long a leader keeps leading without hearing from a
	// quorum before it steps down. It is not a read lease.
	LeaderLease time.Duration
	// Commit is raft's CommitTimeout: how often an idle leader tells
	// followers the commit index. Lower values burn idle CPU per shard; it
	// does not delay writes.
	Commit time.Duration
	// Apply bounds how long a write waits to be enqueued at the leader.
	Apply time.Duration
	// Read bounds a linearizable read's confirmation round.
	Read time.Duration
}

// DefaultTiming is the timing for a LAN cluster. Under CPU-starved container
// hosts raise Heartbeat to 500ms.
var DefaultTiming = Timing{
	Heartbeat:   300 * time.Millisecond,
	LeaderLease: 150 * time.Millisecond,
	Commit:      150 * time.Millisecond,
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
	c.MaxAppendEntries = 256
	c.BatchApplyCh = true
	c.ShutdownOnRemove = false
	c.NoLegacyTelemetry = true
	c.SnapshotThreshold = s.Threshold
	c.SnapshotInterval = s.Interval
	c.TrailingLogs = s.TrailingLogs
	return c
}
