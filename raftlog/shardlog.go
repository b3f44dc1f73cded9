package raftlog

import (
	"encoding/binary"
	"fmt"

	"github.com/hashicorp/raft"
)

// ShardLog is one shard's view of the shared log: a raft.LogStore and a
// raft.StableStore. Writes block until durable (see Log); reads never block
// on writes. Safe for concurrent use, as raft requires.
type ShardLog struct {
	log *Log
	id  uint32
}

var (
	_ raft.LogStore    = (*ShardLog)(nil)
	_ raft.StableStore = (*ShardLog)(nil)
)

// FirstIndex is the index of the oldest entry, 0 when the log is empty.
func (s *ShardLog) FirstIndex() (uint64, error) {
	s.log.mu.RLock()
	defer s.log.mu.RUnlock()
	if st := s.log.shards[s.id]; st != nil {
		return st.first, nil
	}
	return 0, nil
}

// LastIndex is the index of the newest entry, 0 when the log is empty.
func (s *ShardLog) LastIndex() (uint64, error) {
	s.log.mu.RLock()
	defer s.log.mu.RUnlock()
	if st := s.log.shards[s.id]; st != nil {
		return st.last, nil
	}
	return 0, nil
}

// GetLog reads entry index into out, or returns raft.ErrLogNotFound.
func (s *ShardLog) GetLog(index uint64, out *raft.Log) error {
	s.log.mu.RLock()
	defer s.log.mu.RUnlock()
	st := s.log.shards[s.id]
	if st == nil || st.empty() || index < st.first || index > st.last {
		return raft.ErrLogNotFound
	}
	return s.log.read(st.locs[index-st.first], out)
}

// StoreLog stores one entry; see StoreLogs.
func (s *ShardLog) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs durably appends entries with consecutive indexes. An entry
// whose index is already in the log replaces it and everything after it.
func (s *ShardLog) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	for i := 1; i < len(logs); i++ {
		if logs[i].Index != logs[i-1].Index+1 {
			return fmt.Errorf("raftlog: shard %d: entries not consecutive (%d after %d)", s.id, logs[i].Index, logs[i-1].Index)
		}
	}
	return s.log.submit(&request{shard: s.id, kind: kindEntry, logs: logs})
}

// DeleteRange removes the entries min..max (inclusive): a prefix after a
// snapshot, or a suffix on a conflict. A suffix deletion is durable when it
// returns. A prefix deletion takes effect even when it cannot be recorded
// (a full disk): losing it in a crash only brings back entries that are
// below a snapshot. Removing entries from the middle of the log, which raft
// never does, is refused.
func (s *ShardLog) DeleteRange(min, max uint64) error {
	s.log.mu.RLock()
	st := s.log.shards[s.id]
	inside := st != nil && st.inside(min, max)
	prefix := st != nil && min <= st.first
	s.log.mu.RUnlock()
	if inside {
		return fmt.Errorf("raftlog: shard %d: cannot delete %d..%d from the middle of the log", s.id, min, max)
	}
	return s.log.submit(&request{shard: s.id, kind: kindDeleteRange, min: min, max: max, prefix: prefix})
}

// Set durably stores a stable value (raft's current term, last vote).
func (s *ShardLog) Set(key, val []byte) error {
	return s.log.submit(&request{shard: s.id, kind: kindStable, key: key, val: val})
}

// Get returns the stable value for key, or an empty value if it was never
// set.
func (s *ShardLog) Get(key []byte) ([]byte, error) {
	s.log.mu.RLock()
	defer s.log.mu.RUnlock()
	if st := s.log.shards[s.id]; st != nil {
		if v, ok := st.stable[string(key)]; ok {
			return append([]byte(nil), v...), nil
		}
	}
	return []byte{}, nil
}

// SetUint64 stores val under key, big-endian like raft-boltdb.
func (s *ShardLog) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value under key, 0 if it was never set.
func (s *ShardLog) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil || len(v) == 0 {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raftlog: shard %d: stable value %q is %d bytes, not a uint64", s.id, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
