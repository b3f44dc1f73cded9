package shard

import "hash/fnv"

// The mapping of session ids to shards is part of the on-disk format: a
// session's data lives in the shard this function picks, so changing the hash
// or the shard count would strand sessions. Both are fixed when a cluster is
// bootstrapped.

// HashSessionID is the stable 64-bit hash of a session id: FNV-1a.
func HashSessionID(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// JumpHash maps key onto one of n buckets with Lamping and Veach's jump
// consistent hash. The loop follows the key's bucket as the bucket count
// grows: a pseudo-random sequence seeded by the key says at which counts
// the key jumps into the newest bucket, each jump landing further away, and
// b is the last bucket it jumped to below n. Growing n to n+1 therefore moves
// only the keys that jump into bucket n, about 1/(n+1) of them. The constants
// are part of the on-disk format (see above).
func JumpHash(key uint64, n int) int {
	var b, j int64 = -1, 0
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// ShardFor returns the shard of a session id in a cluster of n shards.
func ShardFor(sessionID string, n int) uint32 {
	return uint32(JumpHash(HashSessionID(sessionID), n))
}
