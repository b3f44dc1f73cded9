package httpapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/sessiond/sessiond/backup"
	"github.com/sessiond/sessiond/httpapi"
)

// backupOf takes a backup of n and verifies it.
func backupOf(t *testing.T, n *node, query string) ([]byte, backup.Manifest) {
	t.Helper()
	r := n.get("/v1/backup" + query)
	wantStatus(t, r, http.StatusOK)
	if got := r.Header.Get(httpapi.ShardCountHeader); got != fmt.Sprint(testShardCount) {
		t.Fatalf("%s = %q", httpapi.ShardCountHeader, got)
	}
	a, err := backup.Read(bytes.NewReader(r.Body), "")
	if err != nil {
		t.Fatalf("the backup does not verify: %v", err)
	}
	return r.Body, a.Manifest
}

func TestABackupRestoresIntoAnEmptyNodeWithEveryMessageAndField(t *testing.T) {
	src := startNode(t)
	for i := 0; i < 12; i++ {
		id := fmt.Sprintf("bk-%d", i)
		src.appendMsg(id, "m1", "hello "+id)
		wantStatus(t, src.do(http.MethodPut, sessionPath(id), map[string]any{"step": i}), http.StatusOK)
	}
	data, m := backupOf(t, src, "")
	if m.ShardCount != testShardCount || m.Node != testNodeID || m.Consistency != "linearizable" || m.ClusterID == "" {
		t.Fatalf("manifest = %+v", m)
	}
	for _, sh := range m.Shards {
		if sh.Index == 0 {
			t.Fatalf("shard %d backed up at index 0", sh.Shard)
		}
	}

	dst := startNode(t)
	r := dst.do(http.MethodPost, "/v1/restore", data)
	wantStatus(t, r, http.StatusOK)
	for i := 0; i < 12; i++ {
		id := fmt.Sprintf("bk-%d", i)
		before, _ := src.session(id)
		after, _ := dst.session(id)
		wantStatus(t, after, http.StatusOK)
		if !jsonEqual(t, string(after.Body), string(before.Body)) {
			t.Fatalf("%s after restore = %s, want %s", id, after.Body, before.Body)
		}
	}
	// A write after the restore gets a version above every restored one.
	res := dst.appendMsg("bk-0", "m2", "after the restore")
	if sh := m.Shards[dst.node.ShardFor("bk-0")]; res.Version <= sh.Index {
		t.Fatalf("version %d after the restore is not above the backup's index %d", res.Version, sh.Index)
	}
	// A second restore is refused: the cluster is no longer empty.
	wantError(t, dst.do(http.MethodPost, "/v1/restore", data), http.StatusConflict, httpapi.CodeClusterNotEmpty)
}

// corrupt flips one byte inside the largest snapshot of an archive. The
// snapshots come first, in shard order, each a 512-byte tar header and its
// content padded to 512 bytes.
func corrupt(t *testing.T, data []byte) []byte {
	t.Helper()
	a, err := backup.Read(bytes.NewReader(data), "")
	if err != nil {
		t.Fatal(err)
	}
	var pos, target, largest int64
	for _, sh := range a.Manifest.Shards {
		if sh.Size > largest {
			target, largest = pos+512, sh.Size
		}
		pos += 512 + (sh.Size+511)/512*512
	}
	out := append([]byte(nil), data...)
	out[target+largest-3] ^= 0xff
	return out
}

func TestARestoreThatCannotBeDoneChangesNothing(t *testing.T) {
	src := startNode(t)
	src.appendMsg("kept", "m1", "hello")
	good, _ := backupOf(t, src, "")

	dst := startNode(t)
	wantError(t, dst.do(http.MethodPost, "/v1/restore", corrupt(t, good)), http.StatusBadRequest, httpapi.CodeInvalidBackup)
	wantError(t, dst.do(http.MethodPost, "/v1/restore", good[:len(good)-2000]), http.StatusBadRequest, httpapi.CodeInvalidBackup)
	wantError(t, dst.do(http.MethodPost, "/v1/restore", "not an archive"), http.StatusBadRequest, httpapi.CodeInvalidBackup)
	wantError(t, dst.do(http.MethodPost, "/v1/restore", nil), http.StatusBadRequest, httpapi.CodeInvalidBackup)

	// An archive of another shard count.
	var other bytes.Buffer
	w := backup.NewWriter(&other)
	a, _ := backup.Read(bytes.NewReader(good), t.TempDir())
	f, _ := a.Open(0)
	w.AddShard(0, 5, 1, a.Manifest.Shards[0].Size, f)
	f.Close()
	w.Close(backup.Manifest{ShardCount: 1})
	wantError(t, dst.do(http.MethodPost, "/v1/restore", other.Bytes()), http.StatusConflict, httpapi.CodeShardCountMismatch)
	dst.wantAbsent("kept")

	// After all of that the node still takes the good archive.
	wantStatus(t, dst.do(http.MethodPost, "/v1/restore", good), http.StatusOK)
	if _, doc := dst.session("kept"); len(doc.Messages) != 1 {
		t.Fatalf("restored session holds %d messages", len(doc.Messages))
	}
}

func TestBackupRoutesRefuseBadParameters(t *testing.T) {
	n := startNode(t)
	wantError(t, n.get("/v1/backup?consistency=leader"), http.StatusBadRequest, httpapi.CodeInvalidConsistency)
	wantError(t, n.get("/v1/backup?consistency=nope"), http.StatusBadRequest, httpapi.CodeInvalidConsistency)
	wantError(t, n.get("/internal/v1/shards/99/snapshot"), http.StatusBadRequest, httpapi.CodeInvalidShard)
	wantError(t, n.do(http.MethodPost, "/internal/v1/shards/0/restore?index=x", "x"), http.StatusBadRequest, httpapi.CodeInvalidBackup)
	wantError(t, n.do(http.MethodPost, "/internal/v1/shards/0/restore?index=3", "x",
		"X-Sessiond-Snapshot-Sha256", "00"), http.StatusBadRequest, httpapi.CodeInvalidBackup)
	sum := "0000000000000000000000000000000000000000000000000000000000000000"
	wantError(t, n.do(http.MethodPost, "/internal/v1/shards/0/restore?index=3", "garbage",
		"X-Sessiond-Snapshot-Sha256", sum), http.StatusBadRequest, httpapi.CodeInvalidBackup)
	wantError(t, n.do(http.MethodDelete, "/v1/backup", nil), http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed)
	// A stale backup of a healthy node is as complete as a linearizable one.
	n.appendMsg("s", "m1", "x")
	_, m := backupOf(t, n, "?consistency=stale")
	if m.Consistency != "stale" {
		t.Fatalf("manifest consistency %q", m.Consistency)
	}
}
