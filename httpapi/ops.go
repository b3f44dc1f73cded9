package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/cluster"

	"github.com/sessiond/sessiond/shard"
)

type clusterResponse struct {
	Node       string                 `json:"node"`
	Version    string                 `json:"version,omitempty"`
	ShardCount int                    `json:"shardCount"`
	Ready      bool                   `json:"ready"`
	Members    []cluster.MemberStatus `json:"members"`
	Shards     []shardView            `json:"shards"`
}

// shardView is one shard as this node sees it: its replica's raft status
// when it has one, otherwise the leader known from gossip.
type shardView struct {
	shard.Status
	Local bool `json:"local"`
}

// clusterStatus reports this node's view of every shard it replicates.
func (s *Server) clusterStatus(c echo.Context) error {
	resp := clusterResponse{Node: s.store.NodeID(), Version: s.cfg.Version,
		ShardCount: s.store.ShardCount(), Ready: s.store.Ready(),
		Members: []cluster.MemberStatus{}, Shards: []shardView{}}
	if s.cfg.Cluster != nil {
		resp.Members = s.cfg.Cluster.Members()
	}
	for id := uint32(0); int(id) < resp.ShardCount; id++ {
		if st, ok := s.store.ShardStatus(id); ok {
			resp.Shards = append(resp.Shards, shardView{Status: st, Local: true})
		} else if s.cfg.Cluster != nil {
			leader, _, _ := s.cfg.Cluster.Leader(id)
			resp.Shards = append(resp.Shards, shardView{Status: shard.Status{ID: id, Leader: leader, Replicas: []shard.Replica{}}})
		}
	}
	return c.JSON(http.StatusOK, resp)
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
	if s.cfg.Cluster == nil {
		return errorf(http.StatusNotFound, CodeNodeNotFound, "no node %q in this cluster", id)
	}
	for _, m := range s.cfg.Cluster.Members() {
		if m.ID != id {
			continue
		}
		if m.State != cluster.StateAlive && m.State != cluster.StateSuspect {
			return errorf(http.StatusConflict, CodeNodeNotAlive, "node %q is %s", id, m.State)
		}
		if hops(c.Request()) >= maxHops {
			return unavailable(CodeNoLeader, "drain request forwarded too often")
		}
		target := &url.URL{Scheme: "http", Host: m.HTTPAddr}
		req := c.Request().WithContext(context.WithValue(c.Request().Context(), forwardTarget{}, target))
		c.Response().Header().Del("X-Sessiond-Node")
		s.forward.proxy.ServeHTTP(c.Response(), req)
		return nil
	}
	return errorf(http.StatusNotFound, CodeNodeNotFound, "no node %q in this cluster", id)
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
