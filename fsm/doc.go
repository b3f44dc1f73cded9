// Package fsm is the deterministic heart of sessiond: the in-memory map of chat
// sessions, the commands that change it, and the raft.FSM adapter that applies
// committed log entries and streams snapshots.
//
// Everything non-deterministic (wall-clock time, generated message ids) arrives
// inside commands, stamped by the shard leader, so every replica that applies
// the same log ends in byte-identical state. The package does no I/O of its own
// beyond the snapshot stream raft hands it, reads no clock and draws no random
// numbers.
//
// Concurrency contract (mirrors hashicorp/raft's fsm.go):
//   - Apply, ApplyBatch, Snapshot and Restore are called from one goroutine,
//     raft's FSM goroutine, never concurrently with each other.
//   - FSMSnapshot.Persist runs concurrently with Apply. It reads a frozen set of
//     buckets that Apply copies before its next write, so neither blocks the
//     other.
//   - Readers (Get, AppliedIndex, WaitApplied) may be called from any goroutine
//     at any time. A *Session returned to a reader is immutable.
package fsm
