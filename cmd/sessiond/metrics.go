package main

import (
	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/metrics"
)

// nodeSource is the node state /metrics reads on each scrape.
type nodeSource struct {
	node *cluster.Node
	api  *httpapi.Server
}

// Shards reports every replica this node holds.
func (s nodeSource) Shards() []metrics.ShardState {
	shards := s.node.LocalReplicas()
	out := make([]metrics.ShardState, 0, len(shards))
	for _, sh := range shards {
		st := sh.Status()
		size, taken := sh.SnapshotInfo()
		state := metrics.ShardState{
			ID: st.ID, Leader: st.State == raft.Leader.String(), Term: st.Term,
			LastIndex: st.LastIndex, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
			Sessions: st.Sessions, Bytes: sh.FSM().Bytes(), SnapshotBytes: size, SnapshotTime: taken,
			MoveInFlight: s.node.MoveInFlight(st.ID) != nil,
		}
		for _, r := range st.Replicas {
			if r.ID == s.node.NodeID() {
				state.Voter = r.Suffrage == "voter"
			}
		}
		out = append(out, state)
	}
	return out
}

// Node reports the node-wide counters.
func (s nodeSource) Node() metrics.NodeState {
	port := s.node.RaftPortStats()
	n := metrics.NodeState{MuxRejected: port.Rejected, Streams: s.api.OpenStreams(), Members: map[string]int{},
		HeartbeatBatches: port.HeartbeatBatches, Heartbeats: port.Heartbeats,
		LeaseReads: port.LeaseReads, RoundReads: port.RoundReads}
	if st, ok := s.node.RaftLogStats(); ok {
		n.HasRaftLog = true
		n.RaftLog = metrics.RaftLogState{Commits: st.Batches, Writes: st.Requests, Bytes: st.Bytes, WriteTime: st.WriteTime, Held: st.HeldBatches}
	}
	for _, m := range s.node.Members() {
		n.Members[string(m.State)]++
	}
	return n
}
