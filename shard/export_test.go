package shard

import (
	"context"
	"io"
	"net/rpc"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// SetMaxRPCsInFlight makes replicas opened from now on use n as their raft
// transport's MaxRPCsInFlight, until restore is called. Tests use 2, raft's
// default, to bring back pipelined replication (see maxRPCsInFlight). Call
// it before opening any replica, never while one is being opened.
func SetMaxRPCsInFlight(n int) (restore func()) {
	old := maxRPCsInFlight
	maxRPCsInFlight = n
	return func() { maxRPCsInFlight = old }
}

// HoldLeaderWrites stalls the queued writes of s's own log (leaderlog.go)
// until release is called: s, leading, goes on replicating what it has not
// written yet.
func HoldLeaderWrites(s *Shard) (release func()) {
	held := make(chan struct{})
	s.leaderLog.mu.Lock()
	s.leaderLog.beforeWrite = func() { <-held }
	s.leaderLog.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(held) }) }
}

// CallNode makes one Node.Apply call carrying payload to the host at addr,
// with no deadline of its own: only the connection's bounds can end it.
func CallNode(h *Host, addr string, payload []byte) error {
	var reply ApplyReply
	_, err := h.peers.callSent(context.Background(), addr, "Node.Apply", ApplyArgs{Command: payload}, &reply)
	return err
}

// ApplyVia makes one Node.Apply call to the host at addr and reports
// whether it may have reached it.
func ApplyVia(h *Host, addr string) (sent bool, err error) {
	var reply ApplyReply
	return h.peers.callSent(context.Background(), addr, "Node.Apply", ApplyArgs{Command: []byte{1}}, &reply)
}

// DropNodeClient closes the pooled connection to addr, as a caller whose
// call timed out does.
func DropNodeClient(h *Host, addr string) {
	if cl, err := h.peers.get(addr); err == nil {
		h.peers.drop(addr, cl)
	}
}

// PreambleLen is the length of a raft mux connection's preamble.
const PreambleLen = preambleLen

// ApplyArgsForTest and ApplyReplyForTest let a test serve Node.Apply.
type (
	ApplyArgsForTest  = ApplyArgs
	ApplyReplyForTest = ApplyReply
)

// RaftStats is hashicorp/raft's Stats of replica s, for tests that look
// at raft's own view of the log.
func RaftStats(s *Shard) map[string]string { return s.raft.Stats() }

// ReadIndexAsks counts the read-index requests s sent to its leader.
func ReadIndexAsks(s *Shard) uint64 { return s.readIndexAsks.Load() }

// NodeRPCCodec is the server end of the node RPC codec over conn, for
// tests that serve node RPCs with a net/rpc server of their own.
func NodeRPCCodec(conn io.ReadWriteCloser) rpc.ServerCodec { return newWireCodec(conn) }

// PeerClosed tells h that a peer closed a node connection, as a read on
// one that the other end closed does.
func PeerClosed(h *Host) { h.peerClosed() }

// LastContact is when replica s last heard from its leader.
func LastContact(s *Shard) time.Time { return s.raft.LastContact() }

// LeaseHolds reports whether leader s may serve reads from its read lease
// now.
func LeaseHolds(s *Shard) bool { return s.leaseHolds(s.raft.CurrentTerm()) }

// ConfirmLeadership sends replica s's followers a round of heartbeats, as
// a read does when the lease does not hold, and waits for a quorum.
func ConfirmLeadership(s *Shard) error {
	done := s.transport.verifying()
	defer done()
	return s.await(s.raft.VerifyLeader())
}

// LeaseDuration is how long a read lease lasts after the message that
// renewed it left, with timing t.
func LeaseDuration(t Timing) time.Duration { return leaseDuration(t) }

// SendTimeoutNow sends Node.TimeoutNow for shard to the host at addr, as
// the leader fromID of term would at the end of a leadership transfer.
func SendTimeoutNow(h *Host, addr string, shard uint32, term uint64, fromID string) error {
	args := TimeoutNowArgs{Shard: shard, Term: term, Req: raft.TimeoutNowRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(fromID)}}}
	return h.peers.call(context.Background(), addr, "Node.TimeoutNow", args, &TimeoutNowReply{})
}

// Term is replica s's current raft term.
func Term(s *Shard) uint64 { return s.raft.CurrentTerm() }

// TellToCampaign sends node id at addr the TimeoutNow that ends a
// leadership transfer, through leader s's raft transport, as raft does.
func TellToCampaign(s *Shard, id, addr string) error {
	return s.transport.TimeoutNow(raft.ServerID(id), raft.ServerAddress(addr),
		&raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}}, &raft.TimeoutNowResponse{})
}
