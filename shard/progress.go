package shard

import (
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Follower progress, as the leader sees it. hashicorp/raft does not expose
// its per-follower match index, but every AppendEntries answer, heartbeats
// included, carries the follower's last log index. The replica's transport
// records it, so the leader can tell a follower that stopped taking
// entries while it still answers (a replication that stalled: the case
// raft itself never repairs, since heartbeats keep the follower from
// starting an election) from one that is merely unreachable.

// peerProgress is what the leader last heard from one follower.
type peerProgress struct {
	lastLog    uint64
	advancedAt time.Time // when lastLog last grew, or was seen caught up
	contactAt  time.Time // the last AppendEntries it answered
	repairs    int       // repairs tried in the current stall
	repairedAt time.Time
	warnedAt   time.Time
}

type progressTracker struct {
	mu    sync.Mutex
	peers map[raft.ServerID]*peerProgress
}

// observe records a follower's answer.
func (p *progressTracker) observe(id raft.ServerID, lastLog uint64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.peers == nil {
		p.peers = map[raft.ServerID]*peerProgress{}
	}
	pp := p.peers[id]
	if pp == nil {
		pp = &peerProgress{advancedAt: now}
		p.peers[id] = pp
	}
	if lastLog > pp.lastLog {
		pp.advancedAt, pp.repairs = now, 0
	}
	pp.lastLog, pp.contactAt = lastLog, now
}

// reset forgets what an earlier term's leadership saw.
func (p *progressTracker) reset() {
	p.mu.Lock()
	p.peers = nil
	p.mu.Unlock()
}

// FollowerProgress is one follower as the leader sees it.
type FollowerProgress struct {
	LastLog uint64 // the follower's last log index, from its latest answer
	// Stalled is how long the follower's log has not grown while it was
	// behind the leader's; 0 when it is caught up or advancing.
	Stalled time.Duration
	// Contact is when it last answered an AppendEntries.
	Contact time.Time
}

// progress reports follower id against the leader's last index, and
// counts a follower that has caught up as advancing now.
func (p *progressTracker) progress(id raft.ServerID, leaderLast uint64, now time.Time) (FollowerProgress, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.peers[id]
	if pp == nil {
		return FollowerProgress{}, false
	}
	if pp.lastLog >= leaderLast {
		pp.advancedAt, pp.repairs = now, 0
	}
	return FollowerProgress{LastLog: pp.lastLog, Stalled: now.Sub(pp.advancedAt), Contact: pp.contactAt}, true
}

// repairAction is what the leader does about one follower.
type repairAction int

const (
	repairNone repairAction = iota
	repairWarnUnreachable
	repairResetConnections
	repairTransferLeadership
)

// decide picks the action for a follower stalled for a given time: a
// follower that still answers but has not taken an entry for stallAfter
// first gets fresh connections, then, if it is still stuck another
// stallAfter later, a new leader (whose replication starts from scratch).
// One that does not answer at all is only reported: it is down or cut off,
// and a new leader would not reach it either.
func (p *progressTracker) decide(id raft.ServerID, f FollowerProgress, stallAfter time.Duration, now time.Time) repairAction {
	if f.Stalled < stallAfter {
		return repairNone
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.peers[id]
	if pp == nil {
		return repairNone
	}
	if now.Sub(f.Contact) > stallAfter/2 {
		if now.Sub(pp.warnedAt) < 30*time.Second {
			return repairNone
		}
		pp.warnedAt = now
		return repairWarnUnreachable
	}
	if pp.repairs > 0 && now.Sub(pp.repairedAt) < stallAfter {
		return repairNone
	}
	pp.repairs++
	pp.repairedAt = now
	if pp.repairs == 1 {
		return repairResetConnections
	}
	return repairTransferLeadership
}

// stallAfter is how long a follower may take no entry while behind before
// the leader acts: several election timeouts, so a follower catching up
// through a snapshot or a slow disk is left alone.
func (s *Shard) stallAfter() time.Duration { return 10 * s.timing.Heartbeat }

// checkFollowers looks at every follower of a shard this replica leads and
// repairs stalled replication. Called periodically by the Host.
func (s *Shard) checkFollowers(now time.Time) {
	if !s.IsLeader() {
		return
	}
	cfg, _, err := s.Configuration()
	if err != nil {
		return
	}
	last := s.raft.LastIndex()
	for _, srv := range cfg.Servers {
		if string(srv.ID) == s.nodeID {
			continue
		}
		f, ok := s.transport.progress.progress(srv.ID, last, now)
		if !ok {
			continue
		}
		args := []any{"follower", srv.ID, "follower_last_index", f.LastLog, "leader_last_index", last,
			"stalled", f.Stalled.Round(time.Millisecond)}
		switch s.transport.progress.decide(srv.ID, f, s.stallAfter(), now) {
		case repairWarnUnreachable:
			s.logger.Warn("follower behind and not answering", args...)
		case repairResetConnections:
			s.logger.Warn("follower answers but takes no entries; reopening replication connections", args...)
			s.transport.CloseStreams()
		case repairTransferLeadership:
			s.logger.Warn("follower still takes no entries; handing leadership over so replication restarts", args...)
			go func() {
				if err := s.TransferLeadership("", ""); err != nil {
					s.logger.Warn("leadership transfer for a stalled follower failed", "err", err)
				}
			}()
		}
	}
}

// monitorFollowers runs checkFollowers on every local replica each second
// until done is closed.
func (h *Host) monitorFollowers(done <-chan struct{}, logger *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			for _, s := range h.Shards() {
				s.checkFollowers(now)
			}
		}
	}
}
