// Package cluster turns a node's shard.Host into a member of a sessiond
// cluster. It owns:
//
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
//     across shards, for the HTTP layer (store.go, quota.go, list.go).
//
// Raft itself stays in package shard: cluster decides what a group's
// membership should be and asks the shard's leader to change it.
package cluster
