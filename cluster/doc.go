// Package cluster turns a node's shard.Host into a member of a sessiond
// cluster. It owns:
//
//   - configuration: Config holds what the operator chooses, and Start
//     derives the shard host's configuration from it, raft's timers and
//     snapshot policy from the ShardTuning (shard.Tuning); the process
//     that starts a node fills in a Config and needs neither package
//     shard nor fsm (node.go);
//   - identity: the cluster id, shard count and founders persisted in
//     cluster.json (identity.go), fixed when the cluster forms;
//   - gossip: memberlist membership, each node's metadata (which shards it
//     holds and leads, its data-quota alarm) and gossip encryption
//     (gossip.go, meta.go, gossipkeys.go);
//   - formation: bootstrapping a new cluster's shards or joining an
//     existing one (formation.go);
//   - placement: which nodes hold each shard, by rendezvous hashing over
//     the eligible members (placement.go);
//   - moves: the reconciler on each shard leader that adds replicas as
//     learners, promotes and removes them until the group matches the
//     placement, and the receiving side that creates and drops replicas
//     (reconcile.go, replicas.go, peer.go);
//   - drain and balance: taking a node out of service, and spreading shard
//     leadership evenly (drain.go, balance.go);
//   - routing: who leads a shard, the data quota, and listing sessions
//     across shards, for the HTTP layer (store.go, quota.go, list.go);
//   - expiry: removing, every second, the sessions due on the shards the
//     node leads, idle ones after Config.SessionTTL (expiry.go);
//   - reporting: the local replicas and the raft port's and raft log's
//     counters, for metrics and the alarm scheduler (store.go).
//
// Raft itself stays in package shard: cluster decides what a group's
// membership should be and asks the shard's leader to change it.
package cluster
