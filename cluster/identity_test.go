package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestIdentitySaveLoadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not", "yet", "there") // Save creates it
	want := Identity{ClusterID: 0xfeedface_cafebeef, ShardCount: 16, NodeID: "n1",
		Founders: []string{"n1", "n2", "n3"}, Incarnation: 0x1234_5678_9abc, Settled: true}
	if err := SaveIdentity(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded %+v, saved %+v", got, want)
	}
	// Only the owner may read the identity, and no temp file is left behind.
	st, err := os.Stat(filepath.Join(dir, identityFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		t.Errorf("%s has mode %v, readable by others", identityFile, st.Mode().Perm())
	}
	assertOnlyIdentityFile(t, dir)
}

func TestLoadIdentityFromEmptyDirIsErrNoIdentity(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing")} {
		if _, err := LoadIdentity(dir); !errors.Is(err, ErrNoIdentity) {
			t.Fatalf("LoadIdentity(%s) = %v, want ErrNoIdentity", dir, err)
		}
	}
}

// TestSaveIdentityReplacesAtomically saves two identities in turn while
// readers load concurrently: every load sees one whole identity or the other,
// never a torn or empty file.
func TestSaveIdentityReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	a := Identity{ClusterID: 1, ShardCount: 16, NodeID: "n1"}
	b := Identity{ClusterID: 2, ShardCount: 16, NodeID: "n1", Founders: []string{"n1", "n2", "n3"},
		Settled: true}
	if err := SaveIdentity(dir, a); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := LoadIdentity(dir)
				if err != nil {
					t.Errorf("load during replace: %v", err)
					return
				}
				if !reflect.DeepEqual(got, a) && !reflect.DeepEqual(got, b) {
					t.Errorf("load during replace saw %+v", got)
					return
				}
			}
		}()
	}
	for i := 0; i < 100 && !t.Failed(); i++ {
		next := a
		if i%2 == 0 {
			next = b
		}
		if err := SaveIdentity(dir, next); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if got, err := LoadIdentity(dir); err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("final identity %+v, %v; want %+v", got, err, a)
	}
	assertOnlyIdentityFile(t, dir)
}

// TestLeftoverTempFileDoesNotAffectIdentity simulates a crash in the middle
// of a save: the temp file exists, the rename never happened.
func TestLeftoverTempFileDoesNotAffectIdentity(t *testing.T) {
	dir := t.TempDir()
	want := Identity{ClusterID: 7, ShardCount: 4, NodeID: "n1"}
	if err := SaveIdentity(dir, want); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, identityFile+".tmp123"), []byte(`{"clusterId":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadIdentity(dir); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadIdentity = %+v, %v", got, err)
	}
	next := Identity{ClusterID: 8, ShardCount: 4, NodeID: "n1"}
	if err := SaveIdentity(dir, next); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadIdentity(dir); err != nil || !reflect.DeepEqual(got, next) {
		t.Fatalf("LoadIdentity after a new save = %+v, %v", got, err)
	}
}

func TestCorruptOrIncompleteIdentityIsAnError(t *testing.T) {
	for _, c := range []struct {
		name, content, want string
	}{
		{"garbage", "\x00\x01not json", "corrupt"},
		{"truncated", `{"clusterId": 12, "shardCou`, "corrupt"},
		{"empty file", "", "corrupt"},
		{"wrong types", `{"clusterId": "twelve", "shardCount": 16, "nodeId": "n1"}`, "corrupt"},
		{"no cluster id", `{"clusterId": 0, "shardCount": 16, "nodeId": "n1"}`, "incomplete"},
		{"no shard count", `{"clusterId": 12, "nodeId": "n1"}`, "incomplete"},
		{"negative shard count", `{"clusterId": 12, "shardCount": -1, "nodeId": "n1"}`, "incomplete"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, identityFile), []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadIdentity(dir)
			if err == nil || errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadIdentity = %v, want an error saying %q", err, c.want)
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, identityFile)) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	// An unreadable identity (here: a directory in its place) is an error,
	// not "no identity" — treating it as absent would bootstrap again.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, identityFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(dir); err == nil || errors.Is(err, ErrNoIdentity) {
		t.Fatalf("LoadIdentity with a directory in place of the file = %v", err)
	}
}

func TestNewClusterIDIsNonZeroAndRandom(t *testing.T) {
	seen := map[uint64]bool{}
	for i := 0; i < 1000; i++ {
		id := NewClusterID()
		if id == 0 || seen[id] {
			t.Fatalf("NewClusterID returned %d (zero or repeated)", id)
		}
		seen[id] = true
	}
}

func assertOnlyIdentityFile(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != identityFile {
			t.Errorf("unexpected file %s left in the data dir", e.Name())
		}
	}
}
