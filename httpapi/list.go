package httpapi

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// CodeInvalidPrefix is a session listing's prefix that no session id can
// start with.
const CodeInvalidPrefix = "invalid_prefix"

// ShardLister lists the sessions of a shard this node holds no replica of
// (or whose local replica cannot serve a linearizable read), by asking a
// node that holds one. The Config's Cluster provides it when it implements
// it, as *cluster.Node does; without one, such shards make a listing fail
// with shard_unavailable.
type ShardLister interface {
	ListShard(ctx context.Context, s uint32, prefix, after string, limit int) (cluster.SessionPage, error)
}

// listQuery is a listing's validated parameters.
type listQuery struct {
	prefix, after string
	limit         int
}

func (s *Server) listRoutes() {
	s.echo.GET("/v1/sessions", s.listSessions)
	s.echo.GET("/internal/v1/shards/:shard/sessions", s.listShardSessions)
}

// parseListQuery reads prefix, after and limit: a prefix of a valid session
// id, a valid session id (the last one of the previous page), and a page
// size of 1 to maxPageSize.
func (s *Server) parseListQuery(c echo.Context) (listQuery, error) {
	q := listQuery{prefix: c.QueryParam("prefix"), after: c.QueryParam("after"), limit: defaultPageSize}
	if q.prefix != "" {
		if err := s.cfg.Limits.ValidSessionID(q.prefix); err != nil {
			return q, errorf(http.StatusBadRequest, CodeInvalidPrefix, "prefix must be the start of a session id: %v", err)
		}
	}
	if q.after != "" {
		if err := s.cfg.Limits.ValidSessionID(q.after); err != nil {
			return q, errorf(http.StatusBadRequest, CodeInvalidAfter, "after must be a session id (the next of the previous page): %v", err)
		}
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return q, errorf(http.StatusBadRequest, CodeInvalidLimit, "limit must be a number from 1 to %d", maxPageSize)
		}
		q.limit = n
	}
	return q, nil
}

// sessionList is GET /v1/sessions's answer. Next is the last id returned,
// to pass as after for the next page; it is absent once the listing is
// complete.
type sessionList struct {
	Sessions []fsm.SessionInfo `json:"sessions"`
	Next     string            `json:"next,omitempty"`
}

// listSessions pages through the sessions of every shard in id order. It
// asks each shard for the first limit sessions after the cursor, all
// shards at once, and merges their answers. Each shard is read
// linearizably (on the local replica, a follower through a read index, or
// on a node that holds one): a page holds every session whose creation was
// acknowledged before the request and that was not deleted meanwhile.
// Since the cursor is an id, a pass that follows next to the end lists
// every session that existed for the whole pass exactly once, in id order;
// sessions created or deleted during the pass may or may not appear.
func (s *Server) listSessions(c echo.Context) error {
	q, err := s.parseListQuery(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	n := s.store.ShardCount()
	pages := make([]cluster.SessionPage, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for sh := 0; sh < n; sh++ {
		wg.Add(1)
		go func(sh uint32) {
			defer wg.Done()
			pages[sh], errs[sh] = s.listShard(ctx, sh, q)
		}(uint32(sh))
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, mergePages(pages, q.limit))
}

// listShard reads one shard's page: from the local replica when this node
// holds one that can serve a linearizable read, else from another node.
func (s *Server) listShard(ctx context.Context, sh uint32, q listQuery) (cluster.SessionPage, error) {
	cl := s.cfg.Cluster
	if cl == nil || cl.HasReplica(sh) {
		state, err := s.boundedRead(ctx, sh, shard.Linearizable)
		if err == nil {
			return localPage(state, q), nil
		}
		var nle *shard.NotLeaderError
		var nh *shard.NotHostedError
		if cl == nil || !(errors.As(err, &nle) || errors.As(err, &nh)) {
			return cluster.SessionPage{}, err
		}
		// A follower that could not get a read index, or a replica
		// dropped meanwhile: the shard's leader may still answer.
	}
	lister, ok := cl.(ShardLister)
	if !ok {
		return cluster.SessionPage{}, unavailable(CodeShardUnavailable,
			fmt.Sprintf("shard %d has no replica on this node to list", sh))
	}
	page, err := lister.ListShard(ctx, sh, q.prefix, q.after, q.limit)
	if err != nil {
		if ctx.Err() != nil {
			return page, unavailable(CodeTimeout, "the request timed out before every shard answered")
		}
		return page, unavailable(CodeShardUnavailable, fmt.Sprintf("listing shard %d: %v", sh, err))
	}
	return page, nil
}

func localPage(state *fsm.FSM, q listQuery) cluster.SessionPage {
	items, more := state.List(q.prefix, q.after, q.limit)
	if items == nil {
		items = []fsm.SessionInfo{}
	}
	return cluster.SessionPage{Sessions: items, More: more}
}

// mergePages merges the shards' pages, each in id order, into the first
// limit sessions. The listing goes on (next is set) when sessions were
// left over or a shard has more than it sent.
func mergePages(pages []cluster.SessionPage, limit int) sessionList {
	out := sessionList{Sessions: make([]fsm.SessionInfo, 0, limit)}
	h := &pageHeap{}
	more := false
	for i := range pages {
		more = more || pages[i].More
		if len(pages[i].Sessions) > 0 {
			*h = append(*h, pageCursor{items: pages[i].Sessions})
		}
	}
	heap.Init(h)
	for h.Len() > 0 && len(out.Sessions) < limit {
		top := &(*h)[0]
		out.Sessions = append(out.Sessions, top.items[0])
		if top.items = top.items[1:]; len(top.items) == 0 {
			heap.Pop(h)
		} else {
			heap.Fix(h, 0)
		}
	}
	if (more || h.Len() > 0) && len(out.Sessions) > 0 {
		out.Next = out.Sessions[len(out.Sessions)-1].ID
	}
	return out
}

// pageCursor is what remains of one shard's page.
type pageCursor struct{ items []fsm.SessionInfo }

// pageHeap orders shards' pages by their next id.
type pageHeap []pageCursor

func (h pageHeap) Len() int           { return len(h) }
func (h pageHeap) Less(i, j int) bool { return h[i].items[0].ID < h[j].items[0].ID }
func (h pageHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pageHeap) Push(x any)        { *h = append(*h, x.(pageCursor)) }
func (h *pageHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// listShardSessions is the node-to-node route behind listSessions: one
// shard's page, read linearizably from this node's replica. It never
// forwards; the asking node tries another replica when this one cannot
// answer.
func (s *Server) listShardSessions(c echo.Context) error {
	sh, err := s.shardParam(c)
	if err != nil {
		return err
	}
	q, err := s.parseListQuery(c)
	if err != nil {
		return err
	}
	if cl := s.cfg.Cluster; cl != nil && !cl.HasReplica(sh) {
		return unavailable(CodeShardUnavailable, fmt.Sprintf("this node holds no replica of shard %d", sh))
	}
	state, err := s.boundedRead(c.Request().Context(), sh, shard.Linearizable)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, localPage(state, q))
}
