package shard_test

import (
	"fmt"
	"testing"
)

// TestAppendsOfManyGroupsShareTheNodeConnection: with several shards
// writing at once, their leaders' appends reach the followers as node RPCs
// on the hosts' shared connections, and every replica ends with the same
// sessions.
func TestAppendsOfManyGroupsShareTheNodeConnection(t *testing.T) {
	const shards = 4
	ids := []uint32{0, 1, 2, 3}
	c := makeCluster(t, 3, shards, ids...)
	var before uint64
	for _, h := range c.hosts {
		before += h.host.SharedAppends()
	}
	runConcurrently(shards*4, func(i int) {
		id := ids[i%shards]
		for j := 0; j < 20; j++ {
			// Through elections: a 2-core machine under load can cost a
			// leader its lease; that is not what this test is about.
			if _, err := c.apply(id, appendCmd(fmt.Sprintf("s%d-%d", id, i), fmt.Sprintf("m%d", j))); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var after uint64
	for _, h := range c.hosts {
		after += h.host.SharedAppends()
	}
	if after == before {
		t.Fatal("no append went over the hosts' shared connections")
	}
	t.Logf("%d appends sent as node RPCs", after-before)
	for _, id := range ids {
		c.converged(id)
	}
}
