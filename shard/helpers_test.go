package shard_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/internal/poll"
	"github.com/sessiond/sessiond/shard"
)

// testClusterID is the cluster id every test host carries unless a test says
// otherwise.
const testClusterID uint64 = 0x5e55_10d0_0000_0001

// testTiming is the production timing with a 300ms heartbeat, so that
// elections in tests take a fraction of a second, and generous apply and
// read bounds:
// the tests run under -race on small, shared machines, where a tight bound
// turns scheduling noise into failures.
var testTiming = func() shard.Timing {
	t := shard.Tuning{Heartbeat: 300 * time.Millisecond}.Timing()
	t.Apply = 10 * time.Second
	t.Read = 10 * time.Second
	return t
}()

func testLogger() *slog.Logger {
	level := slog.LevelError + 4 // silent unless asked
	if os.Getenv("SESSIOND_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// listen opens a loopback listener on addr ("" picks a free port). A port
// just released by a closed host may linger briefly, so binding is retried.
func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			return l
		}
	}
	t.Fatalf("listen on %s: %v", addr, err)
	return nil
}

// testHost is one node: a shard.Host on a loopback port and a data dir that
// both survive a restart.
type testHost struct {
	t     testing.TB
	id    string
	dir   string
	addr  string // fixed after the first start
	count int
	tune  func(*shard.HostConfig)
	host  *shard.Host

	mu     sync.Mutex // guards closed: a test may stop the host on another goroutine
	closed bool
}

func newTestHost(t testing.TB, id string, shardCount int, tune func(*shard.HostConfig)) *testHost {
	h := &testHost{t: t, id: id, dir: t.TempDir(), count: shardCount, tune: tune}
	h.start()
	t.Cleanup(h.stop)
	return h
}

// start (re)starts the host on its address and data dir, opening no shard.
func (h *testHost) start() {
	h.t.Helper()
	ln := listen(h.t, h.addr)
	h.addr = ln.Addr().String()
	cfg := shard.HostConfig{
		NodeID: h.id, DataDir: h.dir, Listener: ln, Advertise: h.addr,
		ClusterID: testClusterID, ShardCount: h.count, Limits: fsm.DefaultLimits,
		Timing: testTiming, Snapshots: shard.DefaultSnapshots, Logger: testLogger().With("node", h.id),
	}
	if h.tune != nil {
		h.tune(&cfg)
	}
	host, err := shard.NewHost(cfg)
	if err != nil {
		ln.Close()
		h.t.Fatalf("start host %s: %v", h.id, err)
	}
	h.mu.Lock()
	h.host, h.closed = host, false
	h.mu.Unlock()
}

// stop closes the host (all replicas and the mux), keeping its data. Only
// the first of concurrent calls closes it.
func (h *testHost) stop() {
	h.mu.Lock()
	if h.closed || h.host == nil {
		h.mu.Unlock()
		return
	}
	h.closed = true
	host := h.host
	h.mu.Unlock()
	if err := host.Close(); err != nil {
		h.t.Errorf("close host %s: %v", h.id, err)
	}
}

func (h *testHost) running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.closed
}

func (h *testHost) open(id uint32) *shard.Shard {
	h.t.Helper()
	s, err := h.host.OpenShard(id)
	if err != nil {
		h.t.Fatalf("open shard %d on %s: %v", id, h.id, err)
	}
	return s
}

// testCluster is n hosts that each run a replica of the same shards, every
// shard bootstrapped with all n hosts as voters.
type testCluster struct {
	t      testing.TB
	hosts  []*testHost
	shards []uint32
}

func makeCluster(t testing.TB, n, shardCount int, shards ...uint32) *testCluster {
	t.Helper()
	return makeClusterWith(t, n, shardCount, nil, shards...)
}

// makeClusterWith is makeCluster with tune applied to every host's config.
func makeClusterWith(t testing.TB, n, shardCount int, tune func(*shard.HostConfig), shards ...uint32) *testCluster {
	t.Helper()
	c := &testCluster{t: t, shards: shards}
	var voters []raft.Server
	for i := 0; i < n; i++ {
		h := newTestHost(t, fmt.Sprintf("n%d", i+1), shardCount, tune)
		c.hosts = append(c.hosts, h)
		voters = append(voters, h.host.Self())
	}
	for _, h := range c.hosts {
		for _, id := range shards {
			if err := h.open(id).Bootstrap(voters); err != nil {
				t.Fatalf("bootstrap shard %d on %s: %v", id, h.id, err)
			}
		}
	}
	for _, id := range shards {
		c.leader(id)
	}
	return c
}

// replicas returns the open replicas of shard id on hosts that are running.
func (c *testCluster) replicas(id uint32) []*shard.Shard {
	var out []*shard.Shard
	for _, h := range c.hosts {
		if h.running() {
			if s := h.host.Shard(id); s != nil {
				out = append(out, s)
			}
		}
	}
	return out
}

// leader waits until one running replica of shard id leads and every running
// replica names it.
func (c *testCluster) leader(id uint32) *shard.Shard {
	c.t.Helper()
	var lead *shard.Shard
	eventually(c.t, 20*time.Second, func() error {
		lead = nil
		for _, s := range c.replicas(id) {
			if s.IsLeader() {
				lead = s
			}
		}
		if lead == nil {
			return fmt.Errorf("shard %d has no leader", id)
		}
		want, _ := lead.Leader()
		for _, s := range c.replicas(id) {
			if got, _ := s.Leader(); got != want {
				return fmt.Errorf("shard %d: a replica names leader %q, not %q", id, got, want)
			}
		}
		return nil
	})
	return lead
}

// followers returns the running replicas of shard id other than lead.
func (c *testCluster) followers(id uint32, lead *shard.Shard) []*shard.Shard {
	var out []*shard.Shard
	for _, s := range c.replicas(id) {
		if s != lead {
			out = append(out, s)
		}
	}
	return out
}

// hostOf returns the host that runs replica s.
func (c *testCluster) hostOf(s *shard.Shard) *testHost {
	for _, h := range c.hosts {
		if h.running() && h.host.Shard(s.ID()) == s {
			return h
		}
	}
	c.t.Fatalf("replica of shard %d belongs to no running host", s.ID())
	return nil
}

// retryable reports whether a failed apply may be retried: either it never
// reached the log, or (outcome unknown) the command is an append with fixed
// message ids, which the FSM deduplicates.
func retryable(err error) bool {
	var nl *shard.NotLeaderError
	return errors.As(err, &nl) || errors.Is(err, shard.ErrNotEnqueued) ||
		errors.Is(err, shard.ErrNoLeader) || errors.Is(err, shard.ErrOutcomeUnknown) ||
		errors.Is(err, shard.ErrShutdown)
}

// apply proposes an idempotent command to whichever replica leads shard id,
// retrying through elections until it is acknowledged. It is safe to call
// from any goroutine: it returns an error instead of failing the test.
func (c *testCluster) apply(id uint32, cmd *fsm.Command) (*fsm.Result, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var lastErr error = shard.ErrNoLeader
		for _, s := range c.replicas(id) {
			if !s.IsLeader() {
				continue
			}
			res, err := s.Apply(context.Background(), cmd)
			if err == nil {
				return res, nil
			}
			if !retryable(err) {
				return nil, err
			}
			lastErr = err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("shard %d: not acknowledged within 30s: %w", id, lastErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func appendCmd(session, msgID string) *fsm.Command {
	return &fsm.Command{Op: fsm.OpAppendMessages, Session: session, At: time.Now().UnixMilli(),
		Messages: []fsm.NewMessage{{ID: msgID, Role: "user", Content: "content of " + msgID}}}
}

// mustAppend appends one message and checks the FSM stored it.
func mustAppend(t testing.TB, s *shard.Shard, session, msgID string) *fsm.Result {
	t.Helper()
	res, err := s.Apply(context.Background(), appendCmd(session, msgID))
	if err != nil {
		t.Fatalf("append %s/%s: %v", session, msgID, err)
	}
	if res.Status != fsm.StatusOK {
		t.Fatalf("append %s/%s: status %v (%s)", session, msgID, res.Status, res.Detail)
	}
	return res
}

// eventually polls f until it returns nil or within has passed.
func eventually(t testing.TB, within time.Duration, f func() error) {
	t.Helper()
	poll.Until(t, within, "condition", f)
}

// memSink is a raft.SnapshotSink that keeps the snapshot in memory.
type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

// snapshotHeader is the FSM snapshot's "SSNP", version byte and applied index.
const snapshotHeader = 4 + 1 + 8

// dumpSessions returns every session of f in the FSM's deterministic
// snapshot encoding, without the header (the applied index differs between
// a replica before and after a restart: a new leader applies a no-op).
// FSM.Snapshot only freezes buckets under the FSM's lock, so it is safe next
// to raft's apply goroutine.
func dumpSessions(t testing.TB, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("fsm snapshot: %v", err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("persist fsm snapshot: %v", err)
	}
	snap.Release()
	b := sink.Bytes()
	if len(b) < snapshotHeader || string(b[:4]) != "SSNP" {
		t.Fatalf("fsm snapshot has no header: %x", b[:min(len(b), 16)])
	}
	return b[snapshotHeader:]
}

// converged waits until every running replica of shard id has applied the
// same index and holds byte-identical sessions; it returns that index.
func (c *testCluster) converged(id uint32) uint64 {
	c.t.Helper()
	var index uint64
	eventually(c.t, 20*time.Second, func() error {
		rs := c.replicas(id)
		index = rs[0].FSM().AppliedIndex()
		want := dumpSessions(c.t, rs[0].FSM())
		for _, s := range rs[1:] {
			if got := s.FSM().AppliedIndex(); got != index {
				return fmt.Errorf("shard %d: applied index %d vs %d", id, got, index)
			}
			if got := dumpSessions(c.t, s.FSM()); !bytes.Equal(got, want) {
				return fmt.Errorf("shard %d: replicas hold different sessions at index %d", id, index)
			}
		}
		return nil
	})
	return index
}

// closedByPeer reads conn until the peer closes it; it fails if the
// connection is still open after 10s.
func closedByPeer(conn net.Conn) error {
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, conn)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("connection still open after 10s")
		}
	}
	return nil // EOF or reset: the mux closed it
}

// runConcurrently runs f(0..n-1) on n goroutines and waits for all.
func runConcurrently(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
}
