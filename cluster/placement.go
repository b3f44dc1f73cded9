package cluster

import (
	"encoding/binary"
	"hash/fnv"
	"sort"
)

// Place returns the replicas of shard s: the r nodes with the highest
// rendezvous score hash(s, node), highest first. It is a pure function of its
// arguments, so every node computes the same placement from the same member
// list, and adding or removing one node moves only the replicas that node
// gains or loses.
func Place(s uint32, nodes []string, r int) []string {
	type scored struct {
		id    string
		score uint64
	}
	all := make([]scored, len(nodes))
	for i, n := range nodes {
		all[i] = scored{n, rendezvousScore(s, n)}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].score != all[j].score {
			return all[i].score > all[j].score
		}
		return all[i].id < all[j].id
	})
	if r > len(all) {
		r = len(all)
	}
	out := make([]string, r)
	for i := range out {
		out[i] = all[i].id
	}
	return out
}

func rendezvousScore(s uint32, node string) uint64 {
	h := fnv.New64a()
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], s)
	h.Write(b[:])
	h.Write([]byte(node))
	// FNV's low bits mix poorly for short inputs; finish with a 64-bit mixer
	// (splitmix64) so scores are uniform.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
