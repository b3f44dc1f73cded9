package shard

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/sessiond/sessiond/raftlog"
)

// Log store kinds (HostConfig.LogStore).
const (
	// LogStoreShared keeps every local replica's raft log in one
	// write-ahead log per node (package raftlog): one group-committed
	// fdatasync per batch of writes from all shards. The default.
	LogStoreShared = "shared"
	// LogStorePerShard gives each replica its own raft-boltdb file, as
	// sessiond did before the shared log: one commit stream per shard.
	LogStorePerShard = "per-shard"
)

// logCacheEntries is how many recent entries each replica keeps in memory
// in front of its log store, so replication to followers does not read
// them back from disk. Eight rounds of maxAppendEntries (config.go) cover a
// follower a few rounds behind.
const logCacheEntries = 512

// sharedLogDir is where the shared log lives inside the data directory.
func sharedLogDir(dataDir string) string { return filepath.Join(dataDir, "raftlog") }

func perShardLogPath(shardDir string) string { return filepath.Join(shardDir, "raft.db") }

// chooseLogStore settles which kind of log store a data directory uses. A
// directory keeps the kind it was created with: an empty kind picks it up
// (shared for a new directory), and asking for the other kind is an error
// rather than a silent start with empty logs.
func chooseLogStore(kind, dataDir string) (string, error) {
	perShard, err := filepath.Glob(filepath.Join(dataDir, "shards", "*", "raft.db"))
	if err != nil {
		return "", err
	}
	shared, err := hasSegments(sharedLogDir(dataDir))
	if err != nil {
		return "", err
	}
	switch kind {
	case "":
		if len(perShard) > 0 {
			return LogStorePerShard, nil
		}
		return LogStoreShared, nil
	case LogStoreShared:
		if len(perShard) > 0 {
			return "", fmt.Errorf("%s holds per-shard raft logs (shards/*/raft.db); start it with --log-store %s", dataDir, LogStorePerShard)
		}
	case LogStorePerShard:
		if shared {
			return "", fmt.Errorf("%s holds a shared raft log (raftlog/); start it with --log-store %s", dataDir, LogStoreShared)
		}
	default:
		return "", fmt.Errorf("unknown log store %q (want %s or %s)", kind, LogStoreShared, LogStorePerShard)
	}
	return kind, nil
}

func hasSegments(dir string) (bool, error) {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	for _, n := range names {
		if filepath.Ext(n) == ".wal" {
			return true, nil
		}
	}
	if err == io.EOF {
		err = nil
	}
	return false, err
}

// replicaLog is what a replica needs of its log store.
type replicaLog interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// openReplicaLog opens the log of one replica: its view of the node's
// shared log, or its own bolt file.
func openReplicaLog(cfg Config) (replicaLog, error) {
	if cfg.SharedLog != nil {
		return sharedReplicaLog{cfg.SharedLog.Shard(cfg.ShardID)}, nil
	}
	return raftboltdb.New(raftboltdb.Options{
		Path: perShardLogPath(cfg.Dir),
		// A second process on the same data dir fails instead of waiting
		// forever for bolt's file lock. Not syncing the freelist makes every
		// commit cheaper at the price of a slower open.
		BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
	})
}

// sharedReplicaLog is a replica's part of the shared log. Closing a
// replica leaves the shared log open; the Host closes it.
type sharedReplicaLog struct{ *raftlog.ShardLog }

func (sharedReplicaLog) Close() error { return nil }
