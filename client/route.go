package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/sessiond/sessiond/internal/baseurl"
)

// router remembers where sessions' shard leaders are: the shard of each
// session (from X-Sessiond-Shard or /owner), the leader of each shard and
// the HTTP address of each node (from /v1/cluster). An entry older than
// routeTTL is asked again, so leadership that moved is followed; a leader
// that fails is forgotten at once.
type router struct {
	mu       sync.Mutex
	shardOf  map[string]uint32 // session id → shard, at most maxRoutedSessions
	leaderOf map[uint32]leaderEntry
	nodeAddr map[string]string // node id → base URL
	nodesAt  time.Time
}

type leaderEntry struct {
	base  string
	until time.Time
}

const (
	routeTTL          = 30 * time.Second
	maxRoutedSessions = 100_000
)

func newRouter() *router {
	return &router{shardOf: map[string]uint32{}, leaderOf: map[uint32]leaderEntry{}, nodeAddr: map[string]string{}}
}

// leaderFor is the base URL of the leader of id's shard, asking the
// cluster when the cache does not know it; "" when no leader is known.
func (r *router) leaderFor(ctx context.Context, c *Client, id string) string {
	r.mu.Lock()
	sh, known := r.shardOf[id]
	if known {
		if l, ok := r.leaderOf[sh]; ok && time.Now().Before(l.until) {
			r.mu.Unlock()
			return l.base
		}
	}
	r.mu.Unlock()

	// The lookups go through the endpoints, never through the router.
	o, err := c.owner(ctx, id)
	if err != nil || o.Leader == "" {
		return ""
	}
	base := r.addrOf(ctx, c, o.Leader)
	if base == "" {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setShard(id, o.Shard)
	r.leaderOf[o.Shard] = leaderEntry{base: base, until: time.Now().Add(routeTTL)}
	return base
}

// addrOf is node's HTTP base URL, refreshing the member list once when the
// node is not in it.
func (r *router) addrOf(ctx context.Context, c *Client, node string) string {
	r.mu.Lock()
	base, ok := r.nodeAddr[node]
	fresh := time.Since(r.nodesAt) < time.Second
	r.mu.Unlock()
	if ok || fresh {
		return base
	}
	cs, err := c.clusterStatus(ctx)
	if err != nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nodesAt = time.Now()
	scheme := "http://"
	if u, err := url.Parse(c.endpoints[0]); err == nil && u.Scheme == "https" {
		scheme = "https://" // members advertise host:port; the scheme is the cluster's
	}
	for _, m := range cs.Members {
		if m.HTTPAddr == "" {
			continue
		}
		if b, err := baseurl.Parse(scheme + m.HTTPAddr); err == nil {
			r.nodeAddr[m.ID] = b
		}
	}
	return r.nodeAddr[node]
}

// remember records what a 307 says: the session's shard leads at base.
func (r *router) remember(id string, h http.Header, base string) {
	sh, err := strconv.ParseUint(h.Get("X-Sessiond-Shard"), 10, 32)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setShard(id, uint32(sh))
	r.leaderOf[uint32(sh)] = leaderEntry{base: base, until: time.Now().Add(routeTTL)}
}

// forget drops the leader of id's shard after it failed.
func (r *router) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sh, ok := r.shardOf[id]; ok {
		delete(r.leaderOf, sh)
	}
}

func (r *router) setShard(id string, sh uint32) {
	if len(r.shardOf) >= maxRoutedSessions {
		clear(r.shardOf) // cheaper than an LRU; sessions are looked up again
	}
	r.shardOf[id] = sh
}

// LeaderEndpoint is the base URL that RouteToLeader sends requests for
// session id to: the leader of its shard as last learned, asked from the
// cluster when not known. It is "" when the client does not route to leaders
// or no leader is known, and then any endpoint serves the session. It is
// for callers of Exchange, which never routes; it blocks for at most one
// lookup and is safe for concurrent use.
func (c *Client) LeaderEndpoint(ctx context.Context, id string) string {
	if c.router == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.router.leaderFor(ctx, c, id)
}

// ForgetLeader drops what the client knows of the leader of session id's
// shard, after a request that LeaderEndpoint routed failed; the next
// LeaderEndpoint asks again.
func (c *Client) ForgetLeader(id string) {
	if c.router != nil {
		c.router.forget(id)
	}
}
