package cluster

import "time"

// expiryInterval is how often a node looks for sessions due on the shards
// it leads, so that an expiry is kept to within about a second.
const expiryInterval = time.Second

// expiryLoop removes the sessions due on the shards this node leads: those
// whose own expiry has come and, with Config.SessionTTL, those not written
// for that long. It runs without a SessionTTL too, since sessions may carry
// an expiry of their own. The leader decides and proposes the removal
// (shard.Host.ExpireIdle), so every replica removes the same sessions.
func (n *Node) expiryLoop() {
	n.everyRound(func() time.Duration { return expiryInterval }, n.expiryRound)
}

func (n *Node) expiryRound() {
	ctx, cancel := n.untilStop()
	defer cancel()
	ttl := n.cfg.SessionTTL
	count, err := n.host.ExpireIdle(ctx, ttl)
	if err != nil && ctx.Err() == nil {
		n.logger.Warn("session expiry", "err", err)
	}
	if count > 0 {
		n.logger.Info("expired sessions", "count", count, "session_ttl", ttl)
	}
}
