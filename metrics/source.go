package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Source is the node state read on every scrape. Implementations must be
// safe for concurrent use and return quickly: a scrape waits for them.
type Source interface {
	// Shards describes every shard this node holds a replica of.
	Shards() []ShardState
	// Node describes the node as a whole.
	Node() NodeState
}

// ShardState is one replica of a shard as this node sees it.
type ShardState struct {
	ID           uint32
	Leader       bool // this node leads the shard
	Voter        bool // this replica votes (false while it catches up)
	Term         uint64
	LastIndex    uint64
	CommitIndex  uint64
	AppliedIndex uint64
	Sessions     int
	Bytes        int64 // the memory estimate the data quota counts
	// SnapshotBytes is the size of the newest snapshot on disk, and
	// SnapshotTime when it was taken; both zero without one.
	SnapshotBytes int64
	SnapshotTime  time.Time
	// MoveInFlight is set while this node leads a replica move of the shard.
	MoveInFlight bool
}

// NodeState is the node's counters that no single shard owns. Counters
// are totals since the process started.
type NodeState struct {
	// RaftLog reports the shared raft write-ahead log; HasRaftLog is false
	// on a node that keeps a raft-boltdb log per shard.
	HasRaftLog bool
	RaftLog    RaftLogState
	// HeartbeatBatches counts the batched heartbeat messages sent to other
	// nodes, and Heartbeats the shard heartbeats they carried.
	HeartbeatBatches, Heartbeats uint64
	// LeaseReads and RoundReads count linearizable read rounds of this
	// node's leaders confirmed by the read lease and by heartbeats.
	LeaseReads, RoundReads uint64
	// MuxRejected counts raft-port connections closed before reaching raft.
	MuxRejected uint64
	// Members counts the cluster members by gossip state (alive, suspect,
	// dead, left).
	Members map[string]int
	// Streams is the change streams and blocking reads served now.
	Streams int
}

// RaftLogState is the shared raft log's work since the node started.
type RaftLogState struct {
	Commits   uint64        // group commits, each one write and one fdatasync
	Writes    uint64        // write requests they carried
	Bytes     uint64        // bytes written
	WriteTime time.Duration // time spent in write and fdatasync
	Held      uint64        // commits held open for more writes while the log was busy
}

var (
	shardLabels = []string{"shard"}

	descShardLeader   = shardDesc("leader", "1 when this node leads the shard, else 0.")
	descShardVoter    = shardDesc("voter", "1 when this node's replica of the shard votes, 0 while it is a non-voter catching up.")
	descShardTerm     = shardDesc("term", "Raft term of this node's replica of the shard.")
	descShardLast     = shardDesc("last_index", "Last raft log index of this node's replica.")
	descShardCommit   = shardDesc("commit_index", "Raft commit index known to this node's replica.")
	descShardApplied  = shardDesc("applied_index", "Raft index this node's replica has applied to its state.")
	descShardLag      = shardDesc("apply_lag_entries", "Committed raft entries this node's replica has not applied yet.")
	descShardSessions = shardDesc("sessions", "Sessions stored in the shard.")
	descShardBytes    = shardDesc("data_bytes", "Estimated memory the shard's sessions take (what --max-data-bytes counts).")
	descSnapBytes     = shardDesc("snapshot_bytes", "Size of the shard's newest snapshot on this node; 0 without one.")
	descSnapAge       = shardDesc("snapshot_age_seconds", "Seconds since the shard's newest snapshot on this node was taken; absent without one.")
	descShardMove     = shardDesc("moves_in_flight", "1 while this node leads a replica move of the shard.")

	descLogCommits = nodeDesc("raftlog_commits_total", "Group commits of the shared raft log: one write and one fdatasync each.")
	descLogWrites  = nodeDesc("raftlog_writes_total", "Raft log write requests the shared log's group commits carried.")
	descLogBytes   = nodeDesc("raftlog_bytes_total", "Bytes written to the shared raft log.")
	descLogHeld    = nodeDesc("raftlog_held_commits_total", "Group commits of the shared raft log held open (up to the last commit's time, at most 1 ms) for more writes because the log was busy.")
	descLogTime    = nodeDesc("raftlog_write_seconds_total", "Seconds the shared raft log spent in write and fdatasync; divided by raftlog_commits_total it is the mean commit (fsync) time.")
	descHBBatches  = nodeDesc("heartbeat_batches_total", "Batched heartbeat messages sent to other nodes, one per node and round for all shards.")
	descHeartbeats = nodeDesc("heartbeats_total", "Shard heartbeats carried by the batched heartbeat messages.")
	descReadRounds = prometheus.NewDesc(Namespace+"_read_confirmations_total", "Linearizable read rounds of this node's shard leaders, by how leadership was confirmed: by the read lease, or by a round of heartbeats.", []string{"by"}, nil)
	descMuxRejects = nodeDesc("mux_rejected_connections_total", "Connections to the raft port closed before reaching raft: failed TLS handshake, no client certificate, bad preamble, another cluster, or a shard not hosted here.")
	descMembers    = prometheus.NewDesc(Namespace+"_cluster_members", "Cluster members this node knows, by gossip state.", []string{"state"}, nil)
	descStreams    = nodeDesc("streams", "Change streams and blocking reads this node serves now.")
)

func shardDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(Namespace+"_shard_"+name, help, shardLabels, nil)
}

func nodeDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(Namespace+"_"+name, help, nil, nil)
}

// sourceCollector turns a Source into metrics on each scrape, so that the
// request path keeps no gauges up to date.
type sourceCollector struct {
	src Source
	now func() time.Time
}

func newSourceCollector(src Source) *sourceCollector {
	return &sourceCollector{src: src, now: time.Now}
}

// Describe lists every metric the collector may send.
func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descShardLeader, descShardVoter, descShardTerm, descShardLast,
		descShardCommit, descShardApplied, descShardLag, descShardSessions, descShardBytes, descSnapBytes,
		descSnapAge, descShardMove, descLogCommits, descLogWrites, descLogBytes, descLogTime, descLogHeld, descHBBatches,
		descHeartbeats, descReadRounds, descMuxRejects, descMembers, descStreams} {
		ch <- d
	}
}

// Collect reads the source once and sends its metrics.
func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, s := range c.src.Shards() {
		id := strconv.FormatUint(uint64(s.ID), 10)
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, id)
		}
		gauge(descShardLeader, boolValue(s.Leader))
		gauge(descShardVoter, boolValue(s.Voter))
		gauge(descShardTerm, float64(s.Term))
		gauge(descShardLast, float64(s.LastIndex))
		gauge(descShardCommit, float64(s.CommitIndex))
		gauge(descShardApplied, float64(s.AppliedIndex))
		lag := 0.0
		if s.CommitIndex > s.AppliedIndex {
			lag = float64(s.CommitIndex - s.AppliedIndex)
		}
		gauge(descShardLag, lag)
		gauge(descShardSessions, float64(s.Sessions))
		gauge(descShardBytes, float64(s.Bytes))
		gauge(descSnapBytes, float64(s.SnapshotBytes))
		if !s.SnapshotTime.IsZero() {
			gauge(descSnapAge, max(now.Sub(s.SnapshotTime).Seconds(), 0))
		}
		gauge(descShardMove, boolValue(s.MoveInFlight))
	}
	n := c.src.Node()
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	if n.HasRaftLog {
		counter(descLogCommits, float64(n.RaftLog.Commits))
		counter(descLogWrites, float64(n.RaftLog.Writes))
		counter(descLogBytes, float64(n.RaftLog.Bytes))
		counter(descLogTime, n.RaftLog.WriteTime.Seconds())
		counter(descLogHeld, float64(n.RaftLog.Held))
	}
	counter(descHBBatches, float64(n.HeartbeatBatches))
	counter(descHeartbeats, float64(n.Heartbeats))
	ch <- prometheus.MustNewConstMetric(descReadRounds, prometheus.CounterValue, float64(n.LeaseReads), "lease")
	ch <- prometheus.MustNewConstMetric(descReadRounds, prometheus.CounterValue, float64(n.RoundReads), "heartbeats")
	counter(descMuxRejects, float64(n.MuxRejected))
	for _, state := range []string{"alive", "suspect", "dead", "left"} {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(n.Members[state]), state)
	}
	ch <- prometheus.MustNewConstMetric(descStreams, prometheus.GaugeValue, float64(n.Streams))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
