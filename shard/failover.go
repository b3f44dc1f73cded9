package shard

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// Prompt elections when a leader's process is gone.
//
// A follower campaigns only after one to two heartbeat timeouts without
// word from its leader: 1-3 s with the default timing. When the leader's
// process dies (a crash, kill -9, an out-of-memory kill, a container
// stopped without a drain), its operating system closes its connections at
// once and refuses new ones. So when a node RPC connection is closed by the
// other end, the host dials the raft address of every node its followers
// follow. Where the dial is refused and the follower has not heard from
// its leader for 0.7 of a heartbeat timeout (a live leader is heard from
// every half of one, see heartbeatPeriod, so a refusal that is not a
// death, such as a firewall's reject, deposes nobody), the follower starts
// an election at once, as a leadership transfer does (raft's TimeoutNow):
// the other voters grant their votes although they have not timed out
// themselves. Raft's voting rules still decide who wins; the prompt only
// changes when the election starts, which never affects safety. A node
// that is frozen or cut off keeps its port (a dial is not refused) and is
// left to the timeout, as is a whole machine that is gone.
//
// The followers of one group take turns by node id, campaignStagger apart,
// each only while it has heard from no leader since the probe began, so
// that usually one election settles it: a follower whose log is behind
// loses its election (and is not contacted by the winner), and the next
// one wins.

// campaignStagger is the wait between the turns of one group's followers:
// room for an election on a LAN, a fifth of the heartbeat timeout.
func campaignStagger(t Timing) time.Duration { return t.Heartbeat / 5 }

// reprobeAfter is when the leaders are dialed a second time after a peer
// closed a connection.
const reprobeAfter = 300 * time.Millisecond

// leaderProbeTimeout bounds the dial that tells a dead process from a live
// one. A dial that times out is not taken as either.
const leaderProbeTimeout = 500 * time.Millisecond

// leaderSilence is how long a follower must not have heard from its leader
// before it is prompted: above the gap between a live leader's heartbeats
// (half the timeout, see heartbeatPeriod) with room for delays.
func leaderSilence(t Timing) time.Duration { return t.Heartbeat * 7 / 10 }

// promptHandoff bounds how long a prompt waits for raft to take it: a busy
// raft loop may take it late, when what was checked no longer holds.
const promptHandoff = 20 * time.Millisecond

// closedByPeer reports whether a read error means the other end closed the
// connection, rather than this node closing it.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// refusesConnections reports whether nothing listens at addr any more. It
// gives up, reporting false, once stop is closed.
func refusesConnections(addr string, stop <-chan struct{}) bool {
	ctx, cancel := context.WithTimeout(context.Background(), leaderProbeTimeout)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		conn.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// leaderProbe runs one round of checks at a time and remembers a request
// made during a round, so a connection closed meanwhile is not missed.
type leaderProbe struct {
	mu      sync.Mutex
	running bool
	again   bool
}

// peerClosed is called, on the connection's reading goroutine, when a peer
// closed a node RPC connection. It does not block.
func (h *Host) peerClosed() {
	p := &h.probe
	p.mu.Lock()
	if p.running {
		p.again = true
		p.mu.Unlock()
		return
	}
	select {
	case <-h.monitorStop: // closing: Close waits for the probes it knows
		p.mu.Unlock()
		return
	default:
	}
	p.running = true
	h.probes.Add(1)
	p.mu.Unlock()
	go func() {
		defer h.probes.Done()
		for {
			h.probeLeaders()
			// A process that shuts down closes its connections a moment
			// before its listener: look once more.
			select {
			case <-time.After(reprobeAfter):
				h.probeLeaders()
			case <-h.monitorStop:
			}
			p.mu.Lock()
			again := p.again && !isClosed(h.monitorStop)
			p.again, p.running = false, again
			p.mu.Unlock()
			if !again {
				return
			}
		}
	}()
}

// probeLeaders dials the node of every leader a local replica follows and
// prompts the followers of those that refuse.
func (h *Host) probeLeaders() {
	start := time.Now()
	type leader struct {
		addr, dial raft.ServerAddress
		id         raft.ServerID
	}
	followers := map[leader][]*Shard{}
	for _, s := range h.Shards() {
		addr, id := s.raft.LeaderWithID()
		if addr == "" || id == raft.ServerID(h.cfg.NodeID) || s.raft.State() != raft.Follower {
			continue
		}
		l := leader{addr, s.transport.resolve(id, addr), id}
		followers[l] = append(followers[l], s)
	}
	for l, shards := range followers {
		select {
		case <-h.monitorStop:
			return
		default:
		}
		if !refusesConnections(string(l.dial), h.monitorStop) {
			continue
		}
		h.cfg.Logger.Warn("a shard leader's node refuses connections; its followers campaign now",
			"leader", l.dial, "shards", len(shards))
		for _, s := range shards {
			go s.campaignAfterLeaderGone(l.addr, l.id, start)
		}
	}
}

// campaignAfterLeaderGone starts an election on this replica if it still
// follows the leader at addr (leaderID), whose process is gone, once its
// turn among the group's other voters (by node id) has come, it has heard
// from no leader since the probe began at probed, and none for
// leaderSilence.
func (s *Shard) campaignAfterLeaderGone(addr raft.ServerAddress, leaderID raft.ServerID, probed time.Time) {
	if !s.prompting.CompareAndSwap(false, true) {
		return // a prompt is already waiting its turn
	}
	defer s.prompting.Store(false)
	future := s.raft.GetConfiguration()
	if future.Error() != nil {
		return
	}
	var voters []string
	for _, srv := range future.Configuration().Servers {
		if srv.Suffrage == raft.Voter && srv.ID != leaderID {
			voters = append(voters, string(srv.ID))
		}
	}
	slices.Sort(voters)
	turn := slices.Index(voters, s.nodeID)
	if turn < 0 {
		return // not a voter: it may not campaign
	}
	// Turns start once the leader has been silent for leaderSilence, so
	// that two turns never fall together (a split vote would leave the
	// group to the timeout).
	wait := max(leaderSilence(s.timing)-time.Since(s.raft.LastContact()), 0) +
		time.Duration(turn)*campaignStagger(s.timing)
	if wait > 0 {
		select {
		case <-time.After(wait):
		case <-s.closed:
			return
		}
	}
	// From here the old term's messages are no longer acknowledged, so
	// the old leader's read lease cannot count one accepted after the
	// check below (lease.go).
	term := s.raft.CurrentTerm()
	prev := s.transport.refuseAcksUpTo(term)
	if s.raft.LastContact().After(probed) {
		s.transport.restoreAcks(term, prev)
		return // a leader, old or new, was heard from: nothing to prompt
	}
	if now, _ := s.raft.LeaderWithID(); s.raft.State() != raft.Follower || (now != "" && now != addr) {
		s.transport.restoreAcks(term, prev)
		return // an election started or another leader is known
	}
	if taken, err := s.transport.campaign(); err != nil {
		if !taken {
			s.transport.restoreAcks(term, prev)
		}
		s.logger.Debug("could not prompt an election", "err", err)
	}
}

// campaign hands raft a TimeoutNow, as a leader transferring leadership to
// this replica would send it: raft starts an election at once, and other
// voters grant their votes although they still know a leader.
func (t *heartbeatTransport) campaign() (taken bool, err error) {
	return t.handTimeoutNow(&raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}}, promptHandoff)
}

// handTimeoutNow gives req to raft's loop, waiting at most wait for it to
// be taken, and returns raft's answer; taken says whether raft took it.
func (t *heartbeatTransport) handTimeoutNow(req *raft.TimeoutNowRequest, wait time.Duration) (taken bool, err error) {
	ch := make(chan raft.RPCResponse, 1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case t.rpcs <- raft.RPC{Command: req, RespChan: ch}:
	case <-t.stop:
		return false, ErrShutdown
	case <-timer.C:
		return false, errors.New("raft is busy; the timeout will do")
	}
	select {
	case r := <-ch:
		return true, r.Error
	case <-t.stop:
		return true, ErrShutdown
	}
}
