package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/httpapi"
)

// realNode starts a one-node sessiond (real raft, real HTTP) with 4 shards
// and returns its URL once it is ready.
func realNode(t *testing.T) string {
	t.Helper()
	raftLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewUnstartedServer(nil)
	n, err := cluster.Start(cluster.Config{
		NodeID: "n1", DataDir: t.TempDir(), RaftListener: raftLn, RaftAdvertise: raftLn.Addr().String(),
		HTTPAdvertise: srv.Listener.Addr().String(), GossipBind: "127.0.0.1:0", BootstrapExpect: 1,
		ShardCount: 4, Replicas: 1, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.DefaultConfig()
	cfg.Logger, cfg.Cluster, cfg.Replicas, cfg.ScratchDir = logger, n, n, t.TempDir()
	srv.Config.Handler = httpapi.New(n, cfg)
	srv.Start()
	t.Cleanup(func() { srv.Close(); n.Close() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(srv.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return srv.URL
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("node not ready within 30s")
		}
	}
}

func TestBackupSaveAndRestoreMoveEverySessionToANewCluster(t *testing.T) {
	src, dst := realNode(t), realNode(t)
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		if code, _, errOut := run(t, "", "--addr", src, "append", id, "user", "hello "+id); code != 0 {
			t.Fatalf("append %s: %s", id, errOut)
		}
	}
	file := filepath.Join(t.TempDir(), "cluster.tar")
	code, out, errOut := run(t, "", "--addr", src, "backup", "save", file)
	if code != 0 || !strings.Contains(out, "saved "+file+": 4 shards") {
		t.Fatalf("backup save = %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "4/4 shards") {
		t.Fatalf("no progress on stderr: %q", errOut)
	}
	if _, err := os.Stat(file + ".partial"); !os.IsNotExist(err) {
		t.Fatalf("the partial file is left behind: %v", err)
	}

	code, out, errOut = run(t, "", "--addr", dst, "backup", "restore", file)
	if code != 0 || !strings.Contains(out, "restored cluster.tar") || !strings.Contains(errOut, "uploaded") {
		t.Fatalf("backup restore = %d\n%s\n%s", code, out, errOut)
	}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		code, out, errOut := run(t, "", "--addr", dst, "get", id)
		if code != 0 || !strings.Contains(out, `"hello `+id+`"`) {
			t.Fatalf("get %s after restore = %d %s %s", id, code, out, errOut)
		}
	}

	// The cluster now holds sessions: a second restore is refused before
	// the upload.
	code, _, errOut = run(t, "", "--addr", dst, "backup", "restore", file)
	if code != 1 || !strings.Contains(errOut, "new, empty cluster") || strings.Contains(errOut, "uploaded") {
		t.Fatalf("restore into a cluster with sessions = %d %q", code, errOut)
	}
}

func TestBackupRestoreRefusesADamagedFileAndChangesNothing(t *testing.T) {
	src, dst := realNode(t), realNode(t)
	run(t, "", "--addr", src, "append", "kept", "user", "hello")
	file := filepath.Join(t.TempDir(), "b.tar")
	if code, _, errOut := run(t, "", "--addr", src, "backup", "save", file); code != 0 {
		t.Fatal(errOut)
	}
	data, _ := os.ReadFile(file)
	data[512+8] ^= 0xff // inside the first snapshot, after its tar header
	os.WriteFile(file, data, 0o600)
	code, _, errOut := run(t, "", "--addr", dst, "backup", "restore", file)
	if code != 1 || !strings.Contains(errOut, "invalid backup archive") {
		t.Fatalf("restore of a damaged file = %d %q", code, errOut)
	}
	if code, _, errOut := run(t, "", "--addr", dst, "get", "kept"); code != 1 || !strings.Contains(errOut, "session_not_found") {
		t.Fatalf("get after a refused restore = %d %q", code, errOut)
	}
	if code, _, errOut := run(t, "", "--addr", dst, "backup", "save", file, "--consistency", "leader"); code != 2 {
		t.Fatalf("--consistency leader = %d %q", code, errOut)
	}
	if code, _, _ := run(t, "", "--addr", dst, "backup", "copy", file); code != 2 {
		t.Fatalf("an unknown action = %d, want 2", code)
	}
}
