package raftlog

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// The benchmarks below compare ways to store the raft logs of many shards
// on one node, each with the same load: 16 shards, 4 writers per shard, each
// writer storing one 256-byte entry per call and waiting for it to be
// durable, as raft's leader loop and follower appendEntries do. They report
// entries/s and, where the store can tell, fdatasyncs per entry.
//
//	go test -run '^$' -bench StoreLogs -benchtime 3s ./raftlog

const (
	benchShards     = 16
	benchPerShard   = 4
	benchEntryBytes = 256
)

type benchStore interface {
	StoreLogs(shard uint32, logs []*raft.Log) error
}

func runStoreBench(b *testing.B, st benchStore) {
	var next [benchShards]uint64
	var mu [benchShards]sync.Mutex
	data := make([]byte, benchEntryBytes)
	var wg sync.WaitGroup
	per := b.N/(benchShards*benchPerShard) + 1
	b.ResetTimer()
	start := time.Now()
	for sh := uint32(0); sh < benchShards; sh++ {
		for w := 0; w < benchPerShard; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					// raft stores one shard's entries in order: take the
					// next index and store under the shard's lock.
					mu[sh].Lock()
					next[sh]++
					err := st.StoreLogs(sh, []*raft.Log{{Index: next[sh], Term: 1, Type: raft.LogCommand, Data: data}})
					mu[sh].Unlock()
					if err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	total := per * benchShards * benchPerShard
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "entries/s")
}

type sharedStore struct{ l *Log }

func (s sharedStore) StoreLogs(shard uint32, logs []*raft.Log) error {
	return s.l.Shard(shard).StoreLogs(logs)
}

func BenchmarkStoreLogsSharedLog(b *testing.B) {
	l, err := Open(b.TempDir(), Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	runStoreBench(b, sharedStore{l})
	st := l.Stats()
	b.ReportMetric(float64(st.Batches)/float64(st.Requests), "fsyncs/entry")
}

type perShardBolt []*raftboltdb.BoltStore

func (p perShardBolt) StoreLogs(shard uint32, logs []*raft.Log) error {
	return p[shard].StoreLogs(logs)
}

// BenchmarkStoreLogsBoltPerShard is one raft-boltdb file per shard, the
// per-shard log store.
func BenchmarkStoreLogsBoltPerShard(b *testing.B) {
	dir := b.TempDir()
	var stores perShardBolt
	for i := 0; i < benchShards; i++ {
		s, err := raftboltdb.New(raftboltdb.Options{
			Path:        filepath.Join(dir, fmt.Sprintf("%d.db", i)),
			BoltOptions: &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
		})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	runStoreBench(b, stores)
}

// boltBatch is the other shared candidate: one bbolt file with a bucket per
// shard, every StoreLogs through DB.Batch so concurrent callers share a
// transaction (and its two fdatasyncs: data pages, then the meta page).
type boltBatch struct {
	db      *bbolt.DB
	commits int
	mu      sync.Mutex
}

func (s *boltBatch) StoreLogs(shard uint32, logs []*raft.Log) error {
	return s.db.Batch(func(tx *bbolt.Tx) error {
		s.mu.Lock()
		s.commits++ // counts function runs; an upper bound of commits
		s.mu.Unlock()
		bk, err := tx.CreateBucketIfNotExists(binary.BigEndian.AppendUint32(nil, shard))
		if err != nil {
			return err
		}
		for _, l := range logs {
			v := appendEntry(nil, kindEntry, shard, l) // any encoding of the same size
			if err := bk.Put(binary.BigEndian.AppendUint64(nil, l.Index), v); err != nil {
				return err
			}
		}
		return nil
	})
}

func BenchmarkStoreLogsBoltBatch(b *testing.B) {
	db, err := bbolt.Open(filepath.Join(b.TempDir(), "raft.db"), 0o600,
		&bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.MaxBatchDelay = time.Millisecond
	runStoreBench(b, &boltBatch{db: db})
}
