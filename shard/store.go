package shard

import (
	"context"
	"errors"
	"time"

	"github.com/sessiond/sessiond/fsm"
)

func (h *Host) local(id uint32) (*Shard, error) {
	if s := h.Shard(id); s != nil {
		return s, nil
	}
	return nil, &NotHostedError{Shard: id}
}

// Apply proposes cmd on shard id through its local replica: directly when
// it leads, otherwise by sending the command to the leader's host (see
// applyAt). It fails with NotHostedError when there is no local replica.
func (h *Host) Apply(ctx context.Context, id uint32, cmd *fsm.Command) (*fsm.Result, error) {
	s, err := h.local(id)
	if err != nil {
		return nil, err
	}
	res, err := s.Apply(ctx, cmd)
	var nle *NotLeaderError
	if errors.As(err, &nle) {
		return h.applyAt(ctx, s, cmd, nle)
	}
	return res, err
}

// Read waits until the local replica of shard id may be read at level c and
// returns its state.
func (h *Host) Read(ctx context.Context, id uint32, c Consistency) (*fsm.FSM, error) {
	s, err := h.local(id)
	if err != nil {
		return nil, err
	}
	if err := s.Read(ctx, c); err != nil {
		return nil, err
	}
	return s.FSM(), nil
}

// Ready reports whether every local replica knows a leader.
func (h *Host) Ready() bool {
	shards := h.Shards()
	if len(shards) == 0 {
		return false
	}
	for _, s := range shards {
		if id, _ := s.Leader(); id == "" {
			return false
		}
	}
	return true
}

// ExpireIdle proposes, on every shard this node leads where something is
// due, the removal of the sessions whose own expiry has come and, when ttl
// is positive, of those without one not written for ttl. The time and the
// cutoff are computed here, on the leader, and travel in the command, so
// every replica removes the same sessions. A shard with nothing due costs
// no log entry.
func (h *Host) ExpireIdle(ctx context.Context, ttl time.Duration) (expired int, err error) {
	now := time.Now()
	var cutoff int64
	if ttl > 0 {
		cutoff = now.Add(-ttl).UnixMilli()
	}
	for _, s := range h.Shards() {
		if !s.IsLeader() || !s.FSM().AnyExpired(now.UnixMilli(), cutoff) {
			continue
		}
		res, aerr := s.Apply(ctx, &fsm.Command{Op: fsm.OpExpire, At: now.UnixMilli(), Before: cutoff})
		if aerr != nil {
			err = aerr
			continue
		}
		expired += res.Expired
	}
	return expired, err
}
