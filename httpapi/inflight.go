package httpapi

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// Defaults of the in-flight bounds.
//
// A shard's leader hands raft at most MaxAppendEntries (64, set in the
// shard package) proposals per log write, and buffers as many again in its
// apply channel while it writes the previous batch. 256 operations in flight
// on one shard fill several batches under load, and one admitted at the
// bound waits for about four log writes, not seconds.
//
// The node-wide bound is what sheds load when many shards are busy at once,
// since 16 shards × 256 is far more than one node serves promptly: a node
// on two cores serves about 12k appends/s, so 256 in flight is about 20 ms
// of work and keeps the p99 of what it serves under 100 ms with 1 024
// clients (BENCHMARKS.md), where 512 gave 130 ms. A node with more cores
// can take a higher bound.
const (
	DefaultMaxInFlightPerShard = 256
	DefaultMaxInFlight         = 256
)

// inflight bounds the shard operations (applies and reads) this node runs at
// once, per shard and over all shards. It never waits: an operation beyond a
// bound is refused so that the caller can answer overloaded at once.
//
// Only the node that calls the store counts an operation. A node that
// forwards a request to the shard leader holds no slot while the leader
// works: counting it on both nodes would shed it twice as early, and two
// nodes forwarding to each other could fill each other's bounds with requests
// that only wait.
type inflight struct {
	perShard int64
	total    int64
	node     atomic.Int64
	shards   []atomic.Int64
}

func newInflight(shards, perShard, total int) *inflight {
	if perShard < 1 {
		perShard = DefaultMaxInFlightPerShard
	}
	if total < 1 {
		total = DefaultMaxInFlight
	}
	return &inflight{perShard: int64(perShard), total: int64(total), shards: make([]atomic.Int64, shards)}
}

// check answers overloaded when shard sh or the node is at its bound
// already. It takes no slot: it lets a request that acquire would refuse
// anyway be shed before its body is read and parsed, without letting a
// client that sends its body slowly hold a slot meanwhile.
func (l *inflight) check(sh uint32) *apiError {
	if int(sh) < len(l.shards) && l.shards[sh].Load() >= l.perShard {
		return l.shardFull(sh)
	}
	if l.node.Load() >= l.total {
		return l.nodeFull()
	}
	return nil
}

func (l *inflight) shardFull(sh uint32) *apiError {
	return unavailable(CodeOverloaded, fmt.Sprintf("shard %d already has %d operations in flight on this node", sh, l.perShard))
}

func (l *inflight) nodeFull() *apiError {
	return unavailable(CodeOverloaded, fmt.Sprintf("this node already has %d operations in flight", l.total))
}

// acquire takes a slot for one operation on shard sh and returns the function
// that gives it back, or an overloaded error when a bound is reached.
func (l *inflight) acquire(sh uint32) (release func(), err *apiError) {
	if int(sh) >= len(l.shards) {
		// Not a shard of this cluster; the store answers with its own
		// error, so there is nothing to bound.
		return func() {}, nil
	}
	s := &l.shards[sh]
	if s.Add(1) > l.perShard {
		s.Add(-1)
		return nil, l.shardFull(sh)
	}
	if l.node.Add(1) > l.total {
		l.node.Add(-1)
		s.Add(-1)
		return nil, l.nodeFull()
	}
	return func() {
		l.node.Add(-1)
		s.Add(-1)
	}, nil
}

// boundedApply is store.Apply within the in-flight bounds. The slot is given
// back when Apply returns, so a request that then has to be forwarded (the
// leader moved) holds none while the new leader works on it.
func (s *Server) boundedApply(ctx context.Context, sh uint32, cmd *fsm.Command) (*fsm.Result, error) {
	release, overloaded := s.inflight.acquire(sh)
	if overloaded != nil {
		return nil, overloaded
	}
	defer release()
	return s.store.Apply(ctx, sh, cmd)
}

// boundedRead is store.Read within the in-flight bounds, like boundedApply.
func (s *Server) boundedRead(ctx context.Context, sh uint32, level shard.Consistency) (*fsm.FSM, error) {
	release, overloaded := s.inflight.acquire(sh)
	if overloaded != nil {
		return nil, overloaded
	}
	defer release()
	return s.store.Read(ctx, sh, level)
}
