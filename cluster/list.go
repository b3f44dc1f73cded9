package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/fsm"
)

// SessionPage is one shard's part of a session listing: up to the asked
// number of its sessions in id order, and whether it holds more after the
// last of them. It is the body of GET /internal/v1/shards/{s}/sessions.
type SessionPage struct {
	Sessions []fsm.SessionInfo `json:"sessions"`
	More     bool              `json:"more"`
}

// ListShard asks another node that holds a replica of shard s for its
// sessions with the given prefix after the given id, at most limit (up to
// 1000, so the answer stays well within what the peer client reads). The
// node that answers reads its replica linearizably. The shard's leader is
// asked first, then every other live member that gossips a replica of s,
// in id order; the first answer wins. The call goes over the node's peer
// client: HTTPS with the node certificate when TLS is on, else with the
// node's bearer token when tokens are configured.
func (n *Node) ListShard(ctx context.Context, s uint32, prefix, after string, limit int) (SessionPage, error) {
	addrs := n.shardHosts(s)
	if len(addrs) == 0 {
		return SessionPage{}, fmt.Errorf("no other live member holds a replica of shard %d", s)
	}
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if after != "" {
		q.Set("after", after)
	}
	path := fmt.Sprintf("%s%d/sessions?%s", internalPrefix, s, q.Encode())
	var errs []error
	for _, addr := range addrs {
		var page SessionPage
		err := n.peers.call(ctx, http.MethodGet, addr, path, &page)
		if err == nil {
			return page, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		var pe *client.Error
		if ctx.Err() != nil || (errors.As(err, &pe) && pe.Status/100 == 4) {
			break // another replica would refuse the same way
		}
	}
	return SessionPage{}, errors.Join(errs...)
}

// shardHosts lists the HTTP addresses of the other nodes to ask about shard
// s: its leader first, then the live members whose gossip says they hold a
// replica of it.
func (n *Node) shardHosts(s uint32) []string {
	var addrs []string
	if id, addr, local := n.Leader(s); id != "" && !local && addr != "" {
		addrs = append(addrs, addr)
	}
	members := n.members.list()
	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.NodeID, b.NodeID) })
	for _, m := range members {
		if m.NodeID == n.cfg.NodeID || !m.live() || !m.HostsShard(s) || m.HTTPAddr == "" || slices.Contains(addrs, m.HTTPAddr) {
			continue
		}
		addrs = append(addrs, m.HTTPAddr)
	}
	return addrs
}
