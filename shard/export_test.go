package shard

// SetMaxRPCsInFlight makes replicas opened from now on use n as their raft
// transport's MaxRPCsInFlight, until restore is called. Tests use 2, raft's
// default, to bring back pipelined replication (see maxRPCsInFlight). Call
// it before opening any replica, never while one is being opened.
func SetMaxRPCsInFlight(n int) (restore func()) {
	old := maxRPCsInFlight
	maxRPCsInFlight = n
	return func() { maxRPCsInFlight = old }
}
