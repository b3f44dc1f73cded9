package raftlog

import (
	"math/rand"
	"testing"

	"github.com/hashicorp/raft"
)

// TestBehavesLikeRaftsInMemoryStore drives random operations, in the shapes
// raft issues them, against the log and against raft.InmemStore per shard,
// with tiny segments so rotation, reclaiming and rewrites happen all the
// time, and reopens the log now and then. After every step both must agree
// on every shard's range, entries and stable values.
func TestBehavesLikeRaftsInMemoryStore(t *testing.T) {
	seeds := []int64{1, 2, 3, 4, 5}
	if testing.Short() {
		seeds = seeds[:2]
	}
	for _, seed := range seeds {
		rng := rand.New(rand.NewSource(seed))
		dir := t.TempDir()
		opts := Options{SegmentSize: 2048, MaxSegments: 3, Logger: quietLogger()}
		l, err := Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		const shards = 5
		ref := map[uint32]*raft.InmemStore{}
		term := uint64(1)
		for step := 0; step < 1500; step++ {
			sh := uint32(rng.Intn(shards))
			if ref[sh] == nil {
				ref[sh] = raft.NewInmemStore()
			}
			r, s := ref[sh], l.Shard(sh)
			first, _ := r.FirstIndex()
			last, _ := r.LastIndex()
			switch op := rng.Intn(100); {
			case op < 55: // leader append or follower append
				n := uint64(1 + rng.Intn(8))
				e := entries(sh, last+1, last+n, term)
				storeBoth(t, r, s, e)
			case op < 65 && last > first: // conflict: a new term overwrites a suffix
				term++
				from := first + uint64(rng.Int63n(int64(last-first+1)))
				if rng.Intn(2) == 0 {
					must(t, r.DeleteRange(from, last))
					must(t, s.DeleteRange(from, last))
				}
				storeBoth(t, r, s, entries(sh, from, from+uint64(rng.Intn(4)), term))
			case op < 75 && last > 0: // compaction
				to := first + uint64(rng.Int63n(int64(last-first+1)))
				must(t, r.DeleteRange(first, to))
				must(t, s.DeleteRange(first, to))
			case op < 80: // snapshot installed: append past a gap
				term++
				gap := last + 2 + uint64(rng.Intn(50))
				if last > 0 {
					must(t, r.DeleteRange(first, last))
				}
				storeBoth(t, r, s, entries(sh, gap, gap+2, term))
			case op < 90:
				v := uint64(rng.Intn(1000))
				must(t, r.SetUint64([]byte("CurrentTerm"), v))
				must(t, s.SetUint64([]byte("CurrentTerm"), v))
			case op < 93:
				must(t, l.DropShard(sh))
				delete(ref, sh)
			case op < 97:
				l.Close()
				if l, err = Open(dir, opts); err != nil {
					t.Fatalf("seed %d step %d: reopen: %v", seed, step, err)
				}
			default:
				term++
			}
			compareAll(t, l, ref, shards)
		}
		l.Close()
	}
}

func storeBoth(t *testing.T, r *raft.InmemStore, s *ShardLog, e []*raft.Log) {
	t.Helper()
	// InmemStore keeps stale entries past a rewritten suffix; raft never
	// reads them, and this log drops them. Drop them from the reference.
	last, _ := r.LastIndex()
	if end := e[len(e)-1].Index; end < last {
		must(t, r.DeleteRange(end+1, last))
	}
	first, _ := r.FirstIndex()
	if last != 0 && e[0].Index > last+1 {
		must(t, r.DeleteRange(first, last))
	}
	must(t, r.StoreLogs(e))
	must(t, s.StoreLogs(e))
}

func compareAll(t *testing.T, l *Log, ref map[uint32]*raft.InmemStore, shards uint32) {
	t.Helper()
	for sh := uint32(0); sh < shards; sh++ {
		s := l.Shard(sh)
		r := ref[sh]
		if r == nil {
			requireRange(t, s, 0, 0, nil)
			continue
		}
		first, _ := r.FirstIndex()
		last, _ := r.LastIndex()
		requireRange(t, s, first, last, func(i uint64) *raft.Log {
			var e raft.Log
			must(t, r.GetLog(i, &e))
			return &e
		})
		want, _ := r.GetUint64([]byte("CurrentTerm"))
		if got, _ := s.GetUint64([]byte("CurrentTerm")); got != want {
			t.Fatalf("shard %d term %d, want %d", sh, got, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
