package shard_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/shard"
)

// TestFollowersCatchUpAfterConflictingLeaderChanges runs a three-replica
// group over loopback TCP under a steady write load and changes its leader
// again and again. Half the changes are leadership transfers. The other half
// pause the leader's network while it still accepts writes: the others elect
// a leader that never saw those entries and write their own at the same
// indexes, and on resume the old leader's held-back AppendEntries reach
// followers that have moved on to the newer term, which answer them
// Success=false, while its log now ends in a tail that conflicts with the new
// leader's. Once the load stops, every replica must reach the leader's
// applied index within a few seconds, and every replica must close within a
// bound.
//
// With hashicorp/raft's pipelined replication (see maxRPCsInFlight in
// shard.go) such an answer can leave a replication goroutine parked forever
// in (*netPipeline).AppendEntries; here that shows as a Close that never
// returns, because raft's shutdown waits for the goroutine.
// SESSIOND_TEST_PIPELINED=1 runs the test with that transport.
func TestFollowersCatchUpAfterConflictingLeaderChanges(t *testing.T) {
	if os.Getenv("SESSIOND_TEST_PIPELINED") != "" {
		t.Cleanup(shard.SetMaxRPCsInFlight(2))
		t.Log("raft transport with pipelined replication (MaxRPCsInFlight 2)")
	}
	const (
		arrival     = time.Millisecond // between two requests
		maxInFlight = 512
		rounds      = 24
		pauseEvery  = 2 // every other leader change pauses the leader's network
		catchUp     = 5 * time.Second
		closeTime   = 10 * time.Second
	)
	wires := newLinks(t)
	var seen raftEvents
	c := makeClusterWith(t, 3, 1, func(cfg *shard.HostConfig) {
		wires.route(cfg)
		cfg.Logger = slog.New(&countingHandler{inner: cfg.Logger.Handler(), events: &seen})
	}, 0)

	// Requests arrive at a steady rate whatever became of the earlier ones,
	// as from many independent clients, so a leader that stalls keeps
	// appending new entries for its replication to send.
	stop := make(chan struct{})
	var acked atomic.Int64
	var wg sync.WaitGroup
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopLoad() // before the hosts close, also when the test fails early
	wg.Add(1)
	go func() {
		defer wg.Done()
		inFlight := make(chan struct{}, maxInFlight)
		tick := time.NewTicker(arrival)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			select {
			case inFlight <- struct{}{}:
			default:
				continue // shed, as a server at its limit would
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-inFlight }()
				if _, err := c.apply(0, appendCmd(fmt.Sprintf("s%d", i%64), fmt.Sprintf("m%d", i))); err != nil {
					t.Errorf("append m%d: %v", i, err)
					return
				}
				acked.Add(1)
			}()
		}
	}()

	for round := 0; round < rounds && !t.Failed(); round++ {
		lead := c.leader(0)
		time.Sleep(150 * time.Millisecond) // replication to both followers is under way
		if round%pauseEvery == pauseEvery-1 {
			victim := c.hostOf(lead)
			wires.pause(victim.id)
			// The victim keeps appending what writers still send it until its
			// lease runs out; the others elect a leader that never saw those
			// entries and write their own at the same indexes. On resume,
			// what the victim sent before it stepped down reaches followers
			// that have moved on to the newer term.
			eventually(t, 10*time.Second, func() error {
				for _, s := range c.replicas(0) {
					if s.IsLeader() && s != lead {
						return nil
					}
				}
				return errors.New("no new leader while the old one is paused")
			})
			time.Sleep(200 * time.Millisecond)
			wires.resume(victim.id)
			continue
		}
		if err := lead.TransferLeadership("", ""); err != nil {
			t.Logf("round %d: leadership transfer: %v", round, err) // an election may still follow
		}
	}
	stopLoad()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d appends acknowledged; %s", acked.Load(), &seen)
	if seen.staleTerm.Load() == 0 || seen.truncated.Load() == 0 {
		t.Errorf("the leader changes provoked too little: %s", &seen)
	}

	lead := c.leader(0)
	want := lead.FSM().AppliedIndex()
	deadline := time.Now().Add(catchUp)
	lagging := false
	for _, h := range c.hosts {
		s := h.host.Shard(0)
		for s.FSM().AppliedIndex() < want && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := s.FSM().AppliedIndex(); got < want {
			st := shard.RaftStats(s)
			t.Errorf("%s applied index %d, %v after the load stopped; the leader had applied %d (%s: last log %s, commit %s)",
				h.id, got, catchUp, want, st["state"], st["last_log_index"], st["commit_index"])
			lagging = true
		}
	}
	if lagging {
		t.Logf("leader %s; raft goroutines in the pipeline:\n%s", c.hostOf(lead).id, stacksMentioning("netPipeline"))
	}

	closed := make(chan string, len(c.hosts))
	for _, h := range c.hosts {
		go func() {
			if stopsWithin(h, closeTime) {
				closed <- ""
			} else {
				closed <- h.id
			}
		}()
	}
	var hung []string
	for range c.hosts {
		if id := <-closed; id != "" {
			hung = append(hung, id)
		}
	}
	if len(hung) > 0 {
		t.Errorf("Close of %s did not return within %v; raft goroutines stuck in the pipeline:\n%s",
			strings.Join(hung, ", "), closeTime, stacksMentioning("netPipeline"))
	}
}

// raftEvents counts what raft logged about replication answered
// Success=false, and about conflicting log tails.
type raftEvents struct {
	staleTerm atomic.Int64 // a leader was answered with a newer term
	rejected  atomic.Int64 // a follower refused entries that did not follow its log
	truncated atomic.Int64 // a follower cleared a conflicting tail
}

func (e *raftEvents) String() string {
	return fmt.Sprintf("%d answers with a newer term, %d appends refused for a missing or different previous entry, %d conflicting tails cleared",
		e.staleTerm.Load(), e.rejected.Load(), e.truncated.Load())
}

// countingHandler counts raft's messages about rejected replication and
// passes every record on to inner if inner takes its level.
type countingHandler struct {
	inner  slog.Handler
	events *raftEvents
}

func (h *countingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.inner.Enabled(ctx, l)
}

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	switch r.Message {
	case "peer has newer term, stopping replication":
		h.events.staleTerm.Add(1)
	case "failed to get previous log", "previous log term mis-match":
		h.events.rejected.Add(1)
	case "clearing log suffix":
		h.events.truncated.Add(1)
	}
	if h.inner.Enabled(ctx, r.Level) {
		return h.inner.Handle(ctx, r)
	}
	return nil
}

func (h *countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &countingHandler{inner: h.inner.WithAttrs(as), events: h.events}
}

func (h *countingHandler) WithGroup(name string) slog.Handler {
	return &countingHandler{inner: h.inner.WithGroup(name), events: h.events}
}

// links carries every raft connection from one test host to another
// through a loopback proxy of its own, so that a test can pause a host's
// network: while it is paused, nothing it sends or is sent moves on, and new
// connections to or from it wait, as if the host, or the network, had
// stopped for a while. No connection breaks, so raft sees no error, only
// silence, and after resume every byte held back arrives in order.
type links struct {
	mu      sync.Mutex
	moved   *sync.Cond                 // signalled on resume and close
	addr    map[string]string          // node id → the address its mux listens on
	proxies map[[2]string]net.Listener // (from, to) → the proxy between them
	conns   map[net.Conn]struct{}
	paused  map[string]bool
	done    bool
}

func newLinks(t testing.TB) *links {
	l := &links{addr: map[string]string{}, proxies: map[[2]string]net.Listener{},
		conns: map[net.Conn]struct{}{}, paused: map[string]bool{}}
	l.moved = sync.NewCond(&l.mu)
	t.Cleanup(l.close) // registered first, so it runs after the hosts closed
	return l
}

// route makes the host configured by cfg reach its peers through l.
func (l *links) route(cfg *shard.HostConfig) {
	l.mu.Lock()
	l.addr[cfg.NodeID] = cfg.Advertise
	l.mu.Unlock()
	cfg.AddressOf = routeFrom{l, cfg.NodeID}
}

// routeFrom resolves a peer's address as one host sees it: the proxy that
// carries this host's connections to that peer.
type routeFrom struct {
	l    *links
	from string
}

func (r routeFrom) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	return r.l.proxy(r.from, string(id))
}

func (l *links) proxy(from, to string) (raft.ServerAddress, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if from == to {
		return raft.ServerAddress(l.addr[to]), nil
	}
	if ln := l.proxies[[2]string{from, to}]; ln != nil {
		return raft.ServerAddress(ln.Addr().String()), nil
	}
	if l.done {
		return "", net.ErrClosed
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	l.proxies[[2]string{from, to}] = ln
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go l.forward(conn, from, to)
		}
	}()
	return raft.ServerAddress(ln.Addr().String()), nil
}

// open waits while from or to is paused; it reports false once l closed.
func (l *links) open(from, to string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.done && (l.paused[from] || l.paused[to]) {
		l.moved.Wait()
	}
	return !l.done
}

func (l *links) forward(in net.Conn, from, to string) {
	if !l.track(in) || !l.open(from, to) {
		in.Close()
		return
	}
	l.mu.Lock()
	target := l.addr[to]
	l.mu.Unlock()
	out, err := net.DialTimeout("tcp", target, time.Second)
	if err != nil {
		in.Close()
		l.untrack(in)
		return
	}
	if !l.track(out) {
		in.Close()
		out.Close()
		return
	}
	go l.pipe(out, in, from, to)
	l.pipe(in, out, from, to)
}

// pipe copies src to dst, holding each chunk while the link is paused.
func (l *links) pipe(dst, src net.Conn, from, to string) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !l.open(from, to) {
				break
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	src.Close()
	dst.Close()
	l.untrack(src)
	l.untrack(dst)
}

func (l *links) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *links) untrack(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
}

// pause holds all traffic to and from node id until resume.
func (l *links) pause(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paused[id] = true
}

// resume lets node id's traffic, and what was held back, flow again.
func (l *links) resume(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.paused, id)
	l.moved.Broadcast()
}

func (l *links) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	l.moved.Broadcast()
	for _, ln := range l.proxies {
		ln.Close()
	}
	for c := range l.conns {
		c.Close()
	}
}

// stacksMentioning returns the stacks of the goroutines whose stack
// contains s.
func stacksMentioning(s string) string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, s) {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
