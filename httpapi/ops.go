package httpapi

import (
	"errors"
	"net/http"
	"slices"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/raftlog"
	"github.com/sessiond/sessiond/shard"
)

type clusterResponse struct {
	Node       string                 `json:"node"`
	Version    string                 `json:"version,omitempty"`
	ShardCount int                    `json:"shardCount"`
	Ready      bool                   `json:"ready"`
	Summary    clusterSummary         `json:"summary"`
	Members    []cluster.MemberStatus `json:"members"`
	Shards     []shardView            `json:"shards"`
	RaftLog    *raftLogView           `json:"raftLog,omitempty"`
	// Alarms lists nodes over their data quota; writes to their shards
	// are refused until they are back under it.
	Alarms []cluster.Alarm `json:"alarms"`
	// Streams counts the change streams and blocking reads this node
	// serves now.
	Streams int `json:"streams"`
}

// raftLogReporter is implemented by stores whose node runs the shared raft
// log (package raftlog).
type raftLogReporter interface {
	RaftLogStats() (raftlog.Stats, bool)
}

// raftLogView is the shared raft log's work since the node started: how
// well writes of all shards are grouped into one disk flush, and what a
// flush costs.
type raftLogView struct {
	Commits          uint64  `json:"commits"`
	Writes           uint64  `json:"writes"`
	WritesPerCommit  float64 `json:"writesPerCommit"`
	Bytes            uint64  `json:"bytes"`
	MeanCommitMillis float64 `json:"meanCommitMillis"`
}

// clusterSummary condenses the shards this node holds a replica of: how
// many match their placement, how many moves this node leads, and who leads
// what. A node holding every shard sees the whole cluster; sessionctl
// status merges every node's view.
type clusterSummary struct {
	ShardsSeen      int            `json:"shardsSeen"`
	ShardsConverged int            `json:"shardsConverged"`
	MovesInFlight   int            `json:"movesInFlight"`
	LeadersPerNode  map[string]int `json:"leadersPerNode"`
}

// shardView is one shard as this node sees it: its replica's raft status
// when it has one, otherwise the leader known from gossip; the placement it
// should converge to; the move under way if this node leads one.
type shardView struct {
	shard.Status
	Local     bool          `json:"local"`
	Desired   []string      `json:"desired"`
	Converged bool          `json:"converged"`
	Move      *cluster.Move `json:"move,omitempty"`
}

// clusterStatus reports this node's view of every shard it replicates.
func (s *Server) clusterStatus(c echo.Context) error {
	resp := clusterResponse{Node: s.store.NodeID(), Version: s.cfg.Version,
		ShardCount: s.store.ShardCount(), Ready: s.store.Ready(),
		Summary: clusterSummary{LeadersPerNode: map[string]int{}},
		Members: []cluster.MemberStatus{}, Shards: []shardView{}, Alarms: []cluster.Alarm{}, Streams: s.OpenStreams()}
	cl := s.cfg.Cluster
	if cl != nil {
		resp.Members = cl.Members()
	}
	if cl != nil {
		resp.Alarms = cl.Alarms()
	}
	if r, ok := s.store.(raftLogReporter); ok {
		if st, ok := r.RaftLogStats(); ok && st.Batches > 0 {
			resp.RaftLog = &raftLogView{
				Commits: st.Batches, Writes: st.Requests, Bytes: st.Bytes,
				WritesPerCommit:  float64(st.Requests) / float64(st.Batches),
				MeanCommitMillis: st.WriteTime.Seconds() * 1e3 / float64(st.Batches),
			}
		}
	}
	for id := uint32(0); int(id) < resp.ShardCount; id++ {
		v := shardView{Desired: []string{}}
		if st, ok := s.store.ShardStatus(id); ok {
			v.Status, v.Local = st, true
		} else if cl != nil {
			leader, _, _ := cl.Leader(id)
			v.Status = shard.Status{ID: id, Leader: leader, Replicas: []shard.Replica{}}
		} else {
			continue
		}
		if cl != nil {
			v.Desired = cl.Desired(id)
			v.Move = cl.MoveInFlight(id)
		}
		if v.Local {
			v.Converged = converged(v.Status.Replicas, v.Desired)
			resp.Summary.ShardsSeen++
			if v.Converged {
				resp.Summary.ShardsConverged++
			}
		}
		if v.Move != nil {
			resp.Summary.MovesInFlight++
		}
		if v.Leader != "" {
			resp.Summary.LeadersPerNode[v.Leader]++
		}
		resp.Shards = append(resp.Shards, v)
	}
	return c.JSON(http.StatusOK, resp)
}

// converged reports whether the replicas are exactly the desired nodes, all
// voters. A standalone node (no placement) is converged by definition.
func converged(replicas []shard.Replica, desired []string) bool {
	if len(desired) == 0 {
		return true
	}
	if len(replicas) != len(desired) {
		return false
	}
	for _, r := range replicas {
		if r.Suffrage != "voter" || !slices.Contains(desired, r.ID) {
			return false
		}
	}
	return true
}

type ownerResponse struct {
	Session  string   `json:"session"`
	Shard    uint32   `json:"shard"`
	Leader   string   `json:"leader"`
	Replicas []string `json:"replicas"`
}

// sessionOwner names the shard of a session and the node that owns it.
func (s *Server) sessionOwner(c echo.Context) error {
	id, sh := scope(c)
	resp := ownerResponse{Session: id, Shard: sh, Replicas: []string{}}
	if st, ok := s.store.ShardStatus(sh); ok {
		resp.Leader = st.Leader
		for _, r := range st.Replicas {
			resp.Replicas = append(resp.Replicas, r.ID)
		}
	}
	return c.JSON(http.StatusOK, resp)
}

// transferLeadership moves leadership of a shard, optionally to ?to=NODE. It
// runs on the shard's leader; other nodes forward it there.
func (s *Server) transferLeadership(c echo.Context) error {
	n, err := strconv.ParseUint(c.Param("shard"), 10, 32)
	if err != nil || int(n) >= s.store.ShardCount() {
		return errorf(http.StatusBadRequest, CodeInvalidShard, "shard must be a number below %d", s.store.ShardCount())
	}
	sh := uint32(n)
	if s.cfg.Cluster == nil {
		return errorf(http.StatusConflict, CodeNoOtherReplica, "a standalone node has no other replica to lead")
	}
	return s.routeToLeader(c, sh, false, func(c echo.Context) error {
		if err := s.cfg.Cluster.TransferLeadership(sh, c.QueryParam("to")); err != nil {
			if se := storeError(err); se != nil {
				return se
			}
			if errors.Is(err, cluster.ErrNoOtherVoter) {
				return errorf(http.StatusConflict, CodeNoOtherReplica, "%v", err)
			}
			return errorf(http.StatusConflict, CodeTransferFailed, "%v", err)
		}
		leader, _, _ := s.cfg.Cluster.Leader(sh)
		return c.JSON(http.StatusOK, map[string]any{"shard": sh, "leader": leader})
	})
}

// drainNode asks node :id to drain and exit. Another node's request is
// forwarded to it.
func (s *Server) drainNode(c echo.Context) error {
	id := c.Param("id")
	if id == s.store.NodeID() {
		if s.cfg.OnDrain == nil {
			return errorf(http.StatusConflict, CodeNoOtherReplica, "a standalone node cannot drain")
		}
		s.cfg.OnDrain()
		return c.JSON(http.StatusAccepted, map[string]any{"node": id, "draining": true})
	}
	m, err := s.liveMember(id)
	if err != nil {
		return err
	}
	if hops(c.Request()) >= maxHops {
		return unavailable(CodeNoLeader, "drain request forwarded too often")
	}
	s.proxyTo(c, m.HTTPAddr)
	return nil
}

// liveMember finds another member that is alive (or suspect), or returns
// the API error saying why there is none.
func (s *Server) liveMember(id string) (cluster.MemberStatus, error) {
	if s.cfg.Cluster != nil {
		for _, m := range s.cfg.Cluster.Members() {
			if m.ID != id {
				continue
			}
			if m.State != cluster.StateAlive && m.State != cluster.StateSuspect {
				return m, errorf(http.StatusConflict, CodeNodeNotAlive, "node %q is %s", id, m.State)
			}
			return m, nil
		}
	}
	return cluster.MemberStatus{}, errorf(http.StatusNotFound, CodeNodeNotFound, "no node %q in this cluster", id)
}

// healthz answers 200 while the process serves HTTP.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only when every shard this node replicates has a leader.
func (s *Server) readyz(c echo.Context) error {
	if !s.store.Ready() {
		return &apiError{Status: http.StatusServiceUnavailable, Code: CodeNotReady,
			Message: "not every shard on this node has a leader yet", RetryAfter: 1}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
