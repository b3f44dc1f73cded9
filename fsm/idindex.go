package fsm

import (
	"hash/maphash"
	"strings"
)

// idIndex maps one session's message ids to their seqs without holding a
// string per message, for the same reason as messageLog: a map with
// string keys is a pointer per message for every collection cycle to
// follow. It is keyed by a 64-bit hash of the id and checks a hit against
// the id stored in the session's messageLog; an id whose hash an earlier
// id of the session already took goes to clash, by id, which stays nil
// but for a once-in-2^64 coincidence.
//
// An idIndex belongs to the apply goroutine: not safe for concurrent use.
type idIndex struct {
	seqs  map[uint64]uint64 // hash of the id → seq
	clash map[string]uint64 // id → seq, for ids whose hash was taken
}

// idSeed keys the hashes. The index lives in memory only and is rebuilt
// from the messages on Restore, so the seed may differ between processes
// and replicas.
var idSeed = maphash.MakeSeed()

// idHash is the hash the index keys by; a test replaces it to make ids
// collide.
var idHash = func(id string) uint64 { return maphash.String(idSeed, id) }

func newIDIndex(n int) *idIndex { return &idIndex{seqs: make(map[uint64]uint64, n)} }

// len is the number of ids indexed.
func (x *idIndex) len() int {
	if x == nil {
		return 0
	}
	return len(x.seqs) + len(x.clash)
}

// lookup returns the seq of the message with id in log, the session's
// messages the index was built over.
func (x *idIndex) lookup(log messageLog, id string) (uint64, bool) {
	if x == nil {
		return 0, false
	}
	if seq, ok := x.seqs[idHash(id)]; ok && log.id(int(seq-1)) == id {
		return seq, true
	}
	seq, ok := x.clash[id]
	return seq, ok
}

// add indexes the message with seq, which log holds, under id; id must not
// be indexed yet. The id is copied only if it goes to clash.
func (x *idIndex) add(log messageLog, id string, seq uint64) {
	h := idHash(id)
	if other, ok := x.seqs[h]; ok && log.id(int(other-1)) != id {
		if x.clash == nil {
			x.clash = map[string]uint64{}
		}
		x.clash[strings.Clone(id)] = seq
		return
	}
	x.seqs[h] = seq
}
