package raftlog

// location is where one entry's record lives.
type location struct {
	seg *segment
	off int64 // of the record header
	n   int32 // header + payload
}

// shardState is the in-memory index of one shard's log: the entries
// first..last (locs[i] is entry first+i) and its stable store. Only the
// holder of the log's turn (or Open, before there is one) changes it, under
// Log.mu.
//
// Entries of one shard sit in segments in index order: an entry is always
// written to the newest segment, and any rewrite moves every live entry of
// the shard. So locs[0].seg is the oldest segment this shard still needs.
type shardState struct {
	first, last uint64 // 0, 0 when the log is empty
	locs        []location
	stable      map[string][]byte
}

func newShardState() *shardState { return &shardState{stable: map[string][]byte{}} }

func (s *shardState) empty() bool { return len(s.locs) == 0 }

// store records entry idx at loc. It mirrors what raft expects of
// StoreLogs: appending last+1 extends the log; an index inside the log
// replaces it and everything after it (a follower's conflict truncation,
// or a rewrite); any other index (after a gap, which raft only leaves
// behind an installed snapshot) starts the log afresh at idx.
func (s *shardState) store(idx uint64, loc location) {
	switch {
	case s.empty() || idx < s.first || idx > s.last+1:
		s.locs = append(s.locs[:0], loc)
		s.first = idx
	case idx == s.last+1:
		s.locs = append(s.locs, loc)
	default:
		s.locs = append(s.locs[:idx-s.first], loc)
	}
	s.last = idx
}

// deleteRange removes min..max. Raft removes either a prefix (compaction)
// or a suffix (conflicts, recovery); a range strictly inside the log is
// refused before it is written (see ShardLog.DeleteRange), so here it can
// only be a prefix, a suffix, the whole log or a range outside it.
func (s *shardState) deleteRange(min, max uint64) {
	if s.empty() || max < s.first || min > s.last || min > max {
		return
	}
	if min <= s.first {
		if max >= s.last {
			s.reset()
			return
		}
		s.locs = s.locs[max-s.first+1:]
		s.first = max + 1
		// Let go of the array behind a long-compacted prefix.
		if cap(s.locs) > 1024 && len(s.locs) < cap(s.locs)/4 {
			s.locs = append([]location(nil), s.locs...)
		}
		return
	}
	s.locs = s.locs[:min-s.first]
	s.last = min - 1
}

func (s *shardState) reset() {
	s.locs = nil
	s.first, s.last = 0, 0
}

// inside reports whether min..max lies strictly inside the log, leaving
// entries on both sides: a deletion raft never asks for.
func (s *shardState) inside(min, max uint64) bool {
	return !s.empty() && min > s.first && max < s.last && min <= max
}
