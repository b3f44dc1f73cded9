// Package check is sessiond's fault-injecting checker, the engine behind
// cmd/sessioncheck: it runs a concurrent workload of session reads and
// writes (and change-stream readers) against a Target while a seeded
// schedule kills, pauses, restarts, drains and partitions its nodes,
// records every operation in a History, and at the end checks that each
// session's history is linearizable (porcupine, against the model in
// model.go), that every acknowledged append is stored exactly once at its
// seq, that change streams delivered every message once and in order, and
// that every replica holds the same state. The Report says what was checked
// and every problem found.
//
// The package knows sessiond only through its HTTP API; how nodes are
// started and faults injected (local processes, network namespaces,
// loopback proxies, containers) belongs to the Target, which
// cmd/sessioncheck provides.
package check
