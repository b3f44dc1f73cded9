package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/shard"
)

type clusterResponse struct {
	Node       string         `json:"node"`
	Version    string         `json:"version,omitempty"`
	ShardCount int            `json:"shardCount"`
	Ready      bool           `json:"ready"`
	Shards     []shard.Status `json:"shards"`
}

// clusterStatus reports this node's view of every shard it replicates.
func (s *Server) clusterStatus(c echo.Context) error {
	resp := clusterResponse{Node: s.store.NodeID(), Version: s.cfg.Version,
		ShardCount: s.store.ShardCount(), Ready: s.store.Ready(), Shards: []shard.Status{}}
	for id := 0; id < resp.ShardCount; id++ {
		if st, ok := s.store.ShardStatus(uint32(id)); ok {
			resp.Shards = append(resp.Shards, st)
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
