package client

import "time"

// SetRoute makes c's leader cache say that session id lives on shard and
// that base leads it, as a cache that has not yet seen leadership move.
func SetRoute(c *Client, id string, shard uint32, base string) {
	c.router.mu.Lock()
	defer c.router.mu.Unlock()
	c.router.shardOf[id] = shard
	c.router.leaderOf[shard] = leaderEntry{base: base, until: time.Now().Add(time.Hour)}
}

// Route is the leader c's cache names for shard, "" for none.
func Route(c *Client, shard uint32) string {
	c.router.mu.Lock()
	defer c.router.mu.Unlock()
	return c.router.leaderOf[shard].base
}
