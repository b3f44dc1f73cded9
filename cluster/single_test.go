package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

func singleTestLogger() *slog.Logger {
	level := slog.LevelError + 4 // silent unless asked
	if os.Getenv("SESSIOND_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// startSingle starts a one-node cluster (--bootstrap-expect 1, the
// binary's default) on fresh loopback listeners and waits until it has
// formed. On error the listener is closed (Start leaves it to the caller
// when it refuses to start). tune adjusts the configuration first.
func startSingle(t *testing.T, dir, nodeID string, shards int, tune ...func(*Config)) (*shard.Host, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		NodeID: nodeID, DataDir: dir, RaftListener: ln, RaftAdvertise: ln.Addr().String(),
		HTTPAdvertise: "127.0.0.1:1", GossipBind: "127.0.0.1:0",
		BootstrapExpect: 1, ShardCount: shards, Replicas: 1,
		Logger:   singleTestLogger(),
		tuneHost: func(hc *shard.HostConfig) { hc.Timing.Apply, hc.Timing.Read = 10*time.Second, 10*time.Second },
	}
	for _, f := range tune {
		f(&cfg)
	}
	n, err := Start(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	t.Cleanup(func() { n.Close() })
	select {
	case <-n.Formed():
	case err := <-n.Fatal():
		return nil, err
	case <-time.After(30 * time.Second):
		t.Fatal("single node never formed its cluster")
	}
	return n.Host(), nil
}

// waitAllLead waits until the host leads every one of its shards and each is
// ready for linearizable reads.
func waitAllLead(t *testing.T, h *shard.Host) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range h.Shards() {
		for {
			err := s.Read(context.Background(), shard.Linearizable)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("shard %d never led: %v", s.ID(), err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !h.Ready() {
		t.Fatal("host not ready although every shard leads")
	}
}

func appendOne(t *testing.T, h *shard.Host, session, msgID string) {
	t.Helper()
	cmd := &fsm.Command{Op: fsm.OpAppendMessages, Session: session, At: time.Now().UnixMilli(),
		Messages: []fsm.NewMessage{{ID: msgID, Role: "user", Content: "hello " + msgID}}}
	res, err := h.Apply(context.Background(), h.ShardFor(session), cmd)
	if err != nil || res.Status != fsm.StatusOK {
		t.Fatalf("append %s/%s: %+v, %v", session, msgID, res, err)
	}
}

func TestSingleNodeBootstrapsEveryShardOnFirstStart(t *testing.T) {
	dir := t.TempDir()
	h, err := startSingle(t, dir, "solo", 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(h.Shards()); got != 4 {
		t.Fatalf("%d shards open, want 4", got)
	}
	waitAllLead(t, h)
	for _, s := range h.Shards() {
		st := s.Status()
		if st.State != "Leader" || st.Leader != "solo" || len(st.Replicas) != 1 || st.Replicas[0].Suffrage != "voter" {
			t.Fatalf("shard %d status %+v, want solo as the only voter and leader", s.ID(), st)
		}
	}
	id, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id.ShardCount != 4 || id.NodeID != "solo" || id.ClusterID == 0 || id.ClusterID != h.Mux().ClusterID() {
		t.Fatalf("identity %+v, mux cluster %x", id, h.Mux().ClusterID())
	}
	for i := 0; i < 20; i++ { // sessions spread over all shards
		appendOne(t, h, fmt.Sprintf("s%d", i), "m1")
	}
}

func TestSingleNodeRestartKeepsClusterIDAndData(t *testing.T) {
	dir := t.TempDir()
	h, err := startSingle(t, dir, "solo", 4)
	if err != nil {
		t.Fatal(err)
	}
	waitAllLead(t, h)
	for i := 0; i < 20; i++ {
		appendOne(t, h, fmt.Sprintf("s%d", i), "m1")
	}
	before, _ := LoadIdentity(dir)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	h, err = startSingle(t, dir, "solo", 4)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	waitAllLead(t, h)
	after, err := LoadIdentity(dir)
	if err != nil || after.ClusterID != before.ClusterID || h.Mux().ClusterID() != before.ClusterID {
		t.Fatalf("cluster id after restart %x (mux %x), before %x: %v", after.ClusterID, h.Mux().ClusterID(), before.ClusterID, err)
	}
	for i := 0; i < 20; i++ {
		session := fmt.Sprintf("s%d", i)
		f, err := h.Read(context.Background(), h.ShardFor(session), shard.Linearizable)
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := f.Get(session); !ok || s.MessageCount() != 1 {
			t.Fatalf("%s after restart: %v", session, s)
		}
		appendOne(t, h, session, "m2")
	}
}

func TestSingleNodeRefusesAnotherShardCount(t *testing.T) {
	dir := t.TempDir()
	h, err := startSingle(t, dir, "solo", 4)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	for _, n := range []int{1, 8} {
		_, err := startSingle(t, dir, "solo", n)
		if err == nil {
			t.Fatalf("started with --shards %d on a 4-shard data dir", n)
		}
		msg := err.Error()
		for _, want := range []string{"4 shards", fmt.Sprintf("--shards %d", n), "fixed"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not say %q", msg, want)
			}
		}
	}
	// The refused start left the data as it was.
	if _, err := startSingle(t, dir, "solo", 4); err != nil {
		t.Fatalf("restart with the right count after refusals: %v", err)
	}
}

func TestSingleNodeRefusesAnotherNodeID(t *testing.T) {
	dir := t.TempDir()
	h, err := startSingle(t, dir, "solo", 2)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	_, err = startSingle(t, dir, "impostor", 2)
	if err == nil || !strings.Contains(err.Error(), `"solo"`) || !strings.Contains(err.Error(), `"impostor"`) {
		t.Fatalf("start as another node = %v; want a refusal naming both ids", err)
	}
}

func TestSingleNodeRefusesACorruptIdentity(t *testing.T) {
	dir := t.TempDir()
	h, err := startSingle(t, dir, "solo", 2)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if err := os.WriteFile(filepath.Join(dir, identityFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := startSingle(t, dir, "solo", 2); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("start with a corrupt identity = %v", err)
	}
}

// TestSingleNodeRecoversFromACrashBeforeTheIdentityWasSaved covers the
// window formation leaves: every shard bootstrapped, then a crash before
// cluster.json was written. The next start bootstraps again, which is a
// no-op for shards with state, and no data is lost.
func TestSingleNodeRecoversFromACrashBeforeTheIdentityWasSaved(t *testing.T) {
	dir := t.TempDir()
	h, err := startSingle(t, dir, "solo", 2)
	if err != nil {
		t.Fatal(err)
	}
	waitAllLead(t, h)
	appendOne(t, h, "kept", "m1")
	h.Close()
	if err := os.Remove(filepath.Join(dir, identityFile)); err != nil {
		t.Fatal(err)
	}
	h, err = startSingle(t, dir, "solo", 2)
	if err != nil {
		t.Fatal(err)
	}
	waitAllLead(t, h)
	f, err := h.Read(context.Background(), h.ShardFor("kept"), shard.Linearizable)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := f.Get("kept"); !ok || s.MessageCount() != 1 {
		t.Fatalf("session lost after the identity was rewritten: %v", s)
	}
	if _, err := LoadIdentity(dir); err != nil {
		t.Fatalf("identity not written on the second start: %v", err)
	}
}

// The node removes, on the shards it leads, the sessions not written for
// its SessionTTL, and within a second or two of it.
func TestSingleNodeExpiresIdleSessions(t *testing.T) {
	h, err := startSingle(t, t.TempDir(), "solo", 2, func(c *Config) { c.SessionTTL = time.Second })
	if err != nil {
		t.Fatal(err)
	}
	waitAllLead(t, h)
	appendOne(t, h, "idle", "m1")
	written := time.Now()
	for {
		f, err := h.Read(context.Background(), h.ShardFor("idle"), shard.Linearizable)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := f.Get("idle"); !ok {
			break
		}
		if time.Since(written) > 15*time.Second {
			t.Fatal("a session idle for 15s is still there with a SessionTTL of 1s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if idle := time.Since(written); idle < time.Second {
		t.Fatalf("the session was removed after %v, before its SessionTTL of 1s", idle)
	}
}
