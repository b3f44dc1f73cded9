package main

import "github.com/sessiond/sessiond/client"

// The JSON shapes of GET /v1/cluster are the client's; the names here keep
// the CLI's code short.
type (
	memberStatus = client.Member
	replica      = client.Replica
	move         = client.Move
	shardView    = client.Shard
	summary      = client.Summary
	clusterView  = client.ClusterStatus
)

// nodeReport says whether a member answered the status fan-out.
type nodeReport struct {
	Node    string `json:"node"`
	Addr    string `json:"addr"`
	Ready   bool   `json:"ready"`
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

// mergedView is the cluster as seen from every member that answered.
type mergedView struct {
	Via        string         `json:"via"`
	ShardCount int            `json:"shardCount"`
	Summary    summary        `json:"summary"`
	Nodes      []nodeReport   `json:"nodes"`
	Members    []memberStatus `json:"members"`
	Shards     []shardView    `json:"shards"`
}
