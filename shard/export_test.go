package shard

import "context"

// SetMaxRPCsInFlight makes replicas opened from now on use n as their raft
// transport's MaxRPCsInFlight, until restore is called. Tests use 2, raft's
// default, to bring back pipelined replication (see maxRPCsInFlight). Call
// it before opening any replica, never while one is being opened.
func SetMaxRPCsInFlight(n int) (restore func()) {
	old := maxRPCsInFlight
	maxRPCsInFlight = n
	return func() { maxRPCsInFlight = old }
}

// CallNode makes one Node.Apply call carrying payload to the host at addr,
// with no deadline of its own: only the connection's bounds can end it.
func CallNode(h *Host, addr string, payload []byte) error {
	var reply ApplyReply
	_, err := h.peers.callSent(context.Background(), addr, "Node.Apply", ApplyArgs{Command: payload}, &reply)
	return err
}
