package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/cluster"
)

// Replicas is the node-to-node API a shard leader uses to move replicas:
// create an empty replica before adding it, check how far it has caught up,
// and have it dropped after removing it. A nil Replicas disables the routes.
type Replicas interface {
	CreateReplica(s uint32) error
	DropReplica(ctx context.Context, s uint32) error
	ReplicaStatus(s uint32) (cluster.ReplicaStatus, error)
	Membership(s uint32) (cluster.Membership, error)
}

// Error codes of the internal routes.
const (
	CodeBusy        = "busy"
	CodeStillMember = "still_member"
	CodeNotFormed   = "not_formed"
)

func (s *Server) internalRoutes() {
	if s.cfg.Replicas == nil {
		return
	}
	g := s.echo.Group("/internal/v1/shards/:shard")
	g.POST("/replica", s.createReplica)
	g.DELETE("/replica", s.dropReplica)
	g.GET("/replica", s.replicaStatus)
	g.GET("/membership", s.membership)
}

func (s *Server) shardParam(c echo.Context) (uint32, error) {
	n, err := strconv.ParseUint(c.Param("shard"), 10, 32)
	if err != nil || int(n) >= s.store.ShardCount() {
		return 0, errorf(http.StatusBadRequest, CodeInvalidShard, "shard must be a number below %d", s.store.ShardCount())
	}
	return uint32(n), nil
}

func (s *Server) createReplica(c echo.Context) error {
	sh, err := s.shardParam(c)
	if err != nil {
		return err
	}
	if err := s.cfg.Replicas.CreateReplica(sh); err != nil {
		return replicaError(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"shard": sh, "created": true})
}

func (s *Server) dropReplica(c echo.Context) error {
	sh, err := s.shardParam(c)
	if err != nil {
		return err
	}
	if err := s.cfg.Replicas.DropReplica(c.Request().Context(), sh); err != nil {
		return replicaError(err)
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) replicaStatus(c echo.Context) error {
	sh, err := s.shardParam(c)
	if err != nil {
		return err
	}
	st, err := s.cfg.Replicas.ReplicaStatus(sh)
	if err != nil {
		return replicaError(err)
	}
	return c.JSON(http.StatusOK, st)
}

// membership answers on the shard leader; other nodes forward there.
func (s *Server) membership(c echo.Context) error {
	sh, err := s.shardParam(c)
	if err != nil {
		return err
	}
	return s.routeToLeader(c, sh, false, func(c echo.Context) error {
		m, err := s.cfg.Replicas.Membership(sh)
		if err != nil {
			return replicaError(err)
		}
		return c.JSON(http.StatusOK, m)
	})
}

func replicaError(err error) error {
	switch {
	case errors.Is(err, cluster.ErrBusy):
		return &apiError{Status: http.StatusTooManyRequests, Code: CodeBusy, Message: err.Error(), RetryAfter: 1}
	case errors.Is(err, cluster.ErrStillMember):
		return errorf(http.StatusConflict, CodeStillMember, "%v", err)
	case errors.Is(err, cluster.ErrNotFormed):
		return unavailable(CodeNotFormed, err.Error())
	}
	if se := storeError(err); se != nil {
		return se
	}
	return err
}
