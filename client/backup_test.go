package client_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/internal/testnode"
)

// TestBackupStreamsAnArchiveThatRestoresIntoAnEmptyCluster: Backup reads a
// node's archive, Restore sends it to a new node, which then holds the same
// session; the node that already holds it refuses the same archive with
// ErrClusterNotEmpty, and garbage is ErrInvalidBackup.
func TestBackupStreamsAnArchiveThatRestoresIntoAnEmptyCluster(t *testing.T) {
	scratch := func(c *httpapi.Config) { c.ScratchDir = t.TempDir() }
	src := testnode.Start(t, testnode.Options{Shards: 2, API: scratch})[0]
	dst := testnode.Start(t, testnode.Options{Shards: 2, API: scratch})[0]
	from := newClient(t, client.Config{Endpoints: []string{src.URL}})
	to := newClient(t, client.Config{Endpoints: []string{dst.URL}})
	ctx := ctx(t)
	if _, err := from.Append(ctx, "kept", []client.Message{{ID: "m1", Role: "user", Content: "hello"}}); err != nil {
		t.Fatal(err)
	}

	s, err := from.Backup(ctx, "linearizable")
	if err != nil {
		t.Fatal(err)
	}
	archive, err := io.ReadAll(s)
	s.Close()
	if err != nil || len(archive) == 0 || s.Endpoint != src.URL {
		t.Fatalf("backup: %d bytes from %s, %v", len(archive), s.Endpoint, err)
	}

	if _, err := to.Restore(ctx, bytes.NewReader(archive), int64(len(archive))); err != nil {
		t.Fatalf("restore into an empty node: %v", err)
	}
	got, err := to.Get(ctx, "kept")
	if err != nil || len(got.Messages) != 1 || got.Messages[0].Content != "hello" {
		t.Fatalf("restored session = %+v, %v", got, err)
	}
	if _, err := from.Restore(ctx, bytes.NewReader(archive), int64(len(archive))); !errors.Is(err, client.ErrClusterNotEmpty) {
		t.Fatalf("restore into a node with sessions = %v, want ErrClusterNotEmpty", err)
	}
	junk := []byte("not a tar archive at all")
	if _, err := to.Restore(ctx, bytes.NewReader(junk), int64(len(junk))); !errors.Is(err, client.ErrInvalidBackup) {
		t.Fatalf("restore of garbage = %v, want ErrInvalidBackup", err)
	}
}
