package check

// The change-stream readers: a few goroutines, each following one live
// regular session at a time from its start, as a browser's EventSource
// would: on any end of a stream, or any error, it reconnects to the next
// node with the last event id it saw, whatever the fault injector is doing
// to the nodes. When its session retires, a reader follows it until the
// stream has delivered every append acknowledged to it, then moves on to
// the newest session.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/internal/clientauth"
	"github.com/sessiond/sessiond/internal/sse"
)

const (
	// DefaultStreamReaders is how many sessions' change streams are
	// followed at once.
	DefaultStreamReaders = 4
	// streamIdle is the silence after which a stream's connection is taken
	// for dead (a paused node, a cut link): the server sends a keepalive
	// comment every 15 s.
	streamIdle = 20 * time.Second
	// streamHeaders bounds the wait for a stream's response headers, which
	// a node sends at once after a linearizable read.
	streamHeaders = 10 * time.Second
	// StreamCatchUp bounds how long the readers may take, once the
	// workload has stopped and the cluster is healthy, to get what they
	// are bound to see.
	StreamCatchUp = 60 * time.Second
)

type streamReaders struct {
	w      *Workload
	hist   *History
	hc     *http.Client
	nodes  func() []Node
	n      int
	idle   time.Duration // silence after which a connection is dead
	settle time.Duration // the longest wait for a retired session's operations in flight
	logf   func(format string, args ...any)

	mu        sync.Mutex
	follows   []*streamFollow
	taken     map[string]bool
	finishing chan struct{}
	deadline  time.Time // set before finishing is closed
	wg        sync.WaitGroup
	rotate    atomic.Int64 // spreads the readers' first connections over the nodes
}

func newStreamReaders(n int, w *Workload, hist *History, nodes func() []Node, creds Credentials, logf func(string, ...any)) *streamReaders {
	return &streamReaders{
		w: w, hist: hist, hc: newStreamClient(w.cfg.RequestTimeout, creds), nodes: nodes, n: n,
		idle: streamIdle, settle: w.cfg.RetryDeadline + 2*w.cfg.RequestTimeout + time.Second, logf: logf,
		taken: map[string]bool{}, finishing: make(chan struct{}),
	}
}

// newStreamClient has no overall timeout (a stream lasts as long as it
// is followed) but gives up quickly on a node that does not accept the
// connection or send the headers.
func newStreamClient(requestTimeout time.Duration, creds Credentials) *http.Client {
	dial := max(requestTimeout/2, 500*time.Millisecond)
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: dial, KeepAlive: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout:   dial,
		ResponseHeaderTimeout: streamHeaders,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       30 * time.Second,
	}
	if creds.TLS != nil {
		tr.TLSClientConfig = creds.TLS.Clone()
	}
	return &http.Client{Transport: clientauth.Bearer(tr, creds.Token)}
}

// start starts the readers; they stop when ctx is done or after finish.
func (s *streamReaders) start(ctx context.Context) {
	for range s.n {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(ctx)
		}()
	}
}

// finish stops the readers: each takes no new session, and is bound to
// see every append acknowledged to the one it follows (the workload has
// stopped), which it must get within timeout.
func (s *streamReaders) finish(timeout time.Duration) {
	s.deadline = time.Now().Add(timeout)
	close(s.finishing)
	s.wg.Wait()
}

func (s *streamReaders) finished() bool {
	select {
	case <-s.finishing:
		return true
	default:
		return false
	}
}

func (s *streamReaders) run(ctx context.Context) {
	for ctx.Err() == nil && !s.finished() {
		f := s.pick()
		if f == nil {
			select {
			case <-ctx.Done():
			case <-s.finishing:
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		s.follow(ctx, f)
	}
}

// pick starts following the newest live regular session no reader has
// followed yet: usually one just made, so the stream sees it from its
// start.
func (s *streamReaders) pick() *streamFollow {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.w.regular.newest(func(id string) bool { return s.taken[id] })
	if id == "" {
		return nil
	}
	s.taken[id] = true
	f := newStreamFollow(id, s.hist.Now())
	s.follows = append(s.follows, f)
	return f
}

// follow follows one session until it is done with it.
func (s *streamReaders) follow(ctx context.Context, f *streamFollow) {
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	monitored := make(chan struct{})
	go func() {
		defer close(monitored)
		s.monitor(fctx, cancel, f)
	}()
	next := int(s.rotate.Add(1))
	for failures := 0; fctx.Err() == nil; next++ {
		nodes := s.nodes()
		opened, over := s.stream(fctx, f, nodes[next%len(nodes)])
		if over {
			break
		}
		pause := 20 * time.Millisecond
		if opened {
			failures = 0
		} else if failures++; failures%len(nodes) == 0 {
			// No node would serve it: wait a little longer each round.
			pause = min(time.Duration(failures/len(nodes))*250*time.Millisecond, time.Second)
		}
		select {
		case <-fctx.Done():
		case <-time.After(pause):
		}
	}
	cancel()
	<-monitored
	// Unless the monitor or the stream said why first:
	if why, got, want := f.finish(stopCancelled, s.hist.Now()); why == stopDeadline {
		s.logf("change stream of %s: delivered up to seq %d of %d when the catch-up time ran out", f.session, got, want)
	}
}

// monitor decides when a follow is done: once its session has retired and
// its operations in flight have returned (or at the end of the run), the
// follow is bound to see every append acknowledged by then (cover), and
// it is done when the stream has delivered them, or at the deadline.
func (s *streamReaders) monitor(ctx context.Context, cancel func(), f *streamFollow) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var retired time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		finishing := s.finished()
		if !f.hasCoverage() {
			switch {
			case finishing:
				until, target, _ := s.w.settled(f.session) // nothing is in flight any more
				f.cover(until, target)
			case retired.IsZero():
				if !s.w.regular.live(f.session) {
					retired = time.Now()
				}
			default:
				// A client may have picked the session just before it retired
				// and not begun its operation yet: a moment's grace.
				until, target, idle := s.w.settled(f.session)
				if idle && time.Since(retired) > 250*time.Millisecond || time.Since(retired) > s.settle {
					f.cover(until, target)
				}
			}
		}
		switch {
		case f.caughtUp():
			f.finish(stopCaughtUp, s.hist.Now())
		case finishing && time.Now().After(s.deadline):
			f.finish(stopDeadline, s.hist.Now())
		default:
			continue
		}
		cancel()
		return
	}
}

// stream reads one stream from node n until it ends. opened reports that
// the node served it; over, that the follow is over (a deleted event, or
// a refusal that retrying cannot cure).
func (s *streamReaders) stream(ctx context.Context, f *streamFollow, n Node) (opened, over bool) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, n.URL+sessionPath(f.session)+"/events", nil)
	if err != nil {
		f.refuse(n.Name, err.Error())
		return false, true
	}
	req.Header.Set("Accept", "text/event-stream")
	if last := f.position(); last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		f.failed()
		return false, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		f.failed()
		// 503 (not caught up, draining, no leader), other 5xx, 429: another
		// node or a later attempt serves it. Any other refusal says the
		// request is wrong.
		if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout {
			f.refuse(n.Name, fmt.Sprintf("%d %s", resp.StatusCode, body))
			return false, true
		}
		return false, false
	}
	f.opened()
	idle := time.AfterFunc(s.idle, cancel)
	defer idle.Stop()
	rd := sse.NewReader(&idleReader{r: resp.Body, t: idle, d: s.idle})
	for {
		ev, err := rd.Next()
		if err != nil {
			return true, false
		}
		if f.observe(ev) {
			return true, true
		}
	}
}

// idleReader restarts its timer whenever bytes arrive: keepalive comments
// included, which the event reader skips.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (i *idleReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if n > 0 {
		i.t.Reset(i.d)
	}
	return n, err
}

// result checks every follow against the final state and the history.
func (s *streamReaders) result(finals map[string]*sessionDoc, ops []Op) StreamResult {
	res := StreamResult{Readers: s.n}
	acked := ackedMessages(ops)
	s.mu.Lock()
	follows := append([]*streamFollow(nil), s.follows...)
	s.mu.Unlock()
	for _, f := range follows {
		final, read := finals[f.session]
		f.verify(&res, final, read, acked[f.session])
	}
	return res
}
