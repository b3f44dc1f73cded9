package shard_test

import (
	"fmt"
	"testing"

	"github.com/sessiond/sessiond/shard"
)

// The session → shard mapping is part of the on-disk format: a
// change to the hash or to JumpHash would strand every stored session in a
// shard that no longer serves it. These pinned values make such a change fail
// loudly instead of silently.

// TestHashSessionIDIsFNV1a64 pins the hash to the published FNV-1a 64-bit
// test vectors, so it can be reimplemented in any language.
func TestHashSessionIDIsFNV1a64(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"", 0xcbf29ce484222325},
		{"a", 0xaf63dc4c8601ec8c},
		{"foobar", 0x85944171f73967e8},
	} {
		if got := shard.HashSessionID(c.in); got != c.want {
			t.Errorf("HashSessionID(%q) = %#x, want %#x", c.in, got, c.want)
		}
	}
}

// TestJumpHashMatchesPublishedVectors checks JumpHash against values of an
// independent implementation of Lamping & Veach's algorithm
// (github.com/lithammer/go-jump-consistent-hash).
func TestJumpHashMatchesPublishedVectors(t *testing.T) {
	for _, c := range []struct {
		key  uint64
		n    int
		want int
	}{
		{1, 1, 0},
		{42, 57, 43},
		{0xDEAD10CC, 1, 0},
		{0xDEAD10CC, 666, 361},
		{256, 1024, 520},
	} {
		if got := shard.JumpHash(c.key, c.n); got != c.want {
			t.Errorf("JumpHash(%#x, %d) = %d, want %d", c.key, c.n, got, c.want)
		}
	}
}

// TestShardForIsStable pins the shard of a few session ids at the default
// and extreme shard counts.
func TestShardForIsStable(t *testing.T) {
	for _, c := range []struct {
		id           string
		n16, n64, nK uint32
	}{
		{"", 13, 17, 266},
		{"a", 12, 31, 163},
		{"foobar", 5, 33, 635},
		{"demo-1", 7, 24, 390},
		{"session-42", 3, 25, 926},
		{"user:alice@example.com", 0, 43, 243},
	} {
		for _, k := range []struct {
			n    int
			want uint32
		}{{16, c.n16}, {64, c.n64}, {1024, c.nK}} {
			if got := shard.ShardFor(c.id, k.n); got != k.want {
				t.Errorf("ShardFor(%q, %d) = %d, want %d", c.id, k.n, got, k.want)
			}
		}
		if got := shard.ShardFor(c.id, 1); got != 0 {
			t.Errorf("ShardFor(%q, 1) = %d, want 0", c.id, got)
		}
	}
}

// TestShardForStaysInRangeAndSpreadsEvenly checks every id lands in
// [0, n) and that no shard gets far more or fewer ids than its share.
func TestShardForStaysInRangeAndSpreadsEvenly(t *testing.T) {
	const ids = 64_000
	for _, n := range []int{1, 2, 3, 7, 16, 100, 1024} {
		counts := make([]int, n)
		for i := 0; i < ids; i++ {
			s := shard.ShardFor(fmt.Sprintf("session-%d", i), n)
			if int(s) >= n {
				t.Fatalf("ShardFor(session-%d, %d) = %d, out of range", i, n, s)
			}
			counts[s]++
		}
		share := ids / n
		for s, got := range counts {
			// Generous bounds: a binomial count at these sizes stays well
			// within ±50% of its mean (n=1024: mean 62, sd ≈ 8).
			if got < share/2 || got > share*3/2 {
				t.Errorf("n=%d: shard %d got %d ids, share %d", n, s, got, share)
			}
		}
	}
}

// TestJumpHashGrowingOnlyMovesKeysToTheNewBucket is the consistency property:
// going from n to n+1 buckets, a key either stays where it was or moves to
// the new bucket n, and about 1/(n+1) of the keys move.
func TestJumpHashGrowingOnlyMovesKeysToTheNewBucket(t *testing.T) {
	const keys = 20_000
	for n := 1; n <= 64; n++ {
		moved := 0
		for i := 0; i < keys; i++ {
			key := shard.HashSessionID(fmt.Sprintf("k%d", i))
			before, after := shard.JumpHash(key, n), shard.JumpHash(key, n+1)
			if after != before {
				if after != n {
					t.Fatalf("key %d moved from bucket %d to %d when growing %d → %d buckets", i, before, after, n, n+1)
				}
				moved++
			}
		}
		want := keys / (n + 1)
		if moved < want/2 || moved > want*3/2 {
			t.Errorf("growing %d → %d buckets moved %d keys, expected about %d", n, n+1, moved, want)
		}
	}
}
