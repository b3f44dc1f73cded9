package main

// The JSON shapes of GET /v1/cluster, declared here so the CLI depends on
// the API only, not on the server's packages. Timestamps stay strings: the
// CLI passes them through and never computes with them.
type memberStatus struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	HTTPAddr   string `json:"httpAddr"`
	RaftAddr   string `json:"raftAddr"`
	GossipAddr string `json:"gossipAddr"`
	Formed     bool   `json:"formed"`
	Draining   bool   `json:"draining"`
	Leading    int    `json:"leading"`
	Replicas   int    `json:"replicas"`
	Since      string `json:"since,omitempty"`
}

type replica struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	Suffrage string `json:"suffrage"`
}

type move struct {
	Shard   uint32 `json:"shard"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	Step    string `json:"step"`
	Started string `json:"started,omitempty"`
}

type shardView struct {
	ID             uint32    `json:"id"`
	State          string    `json:"state"`
	Leader         string    `json:"leader"`
	LeaderRaftAddr string    `json:"leaderRaftAddr,omitempty"`
	Term           uint64    `json:"term"`
	LastIndex      uint64    `json:"lastIndex"`
	CommitIndex    uint64    `json:"commitIndex"`
	AppliedIndex   uint64    `json:"appliedIndex"`
	Sessions       int       `json:"sessions"`
	Replicas       []replica `json:"replicas"`
	Local          bool      `json:"local"`
	Desired        []string  `json:"desired"`
	Converged      bool      `json:"converged"`
	Move           *move     `json:"move,omitempty"`
	// Source is the node whose view this is; set by the merge only.
	Source string `json:"source,omitempty"`
}

type summary struct {
	ShardsSeen      int            `json:"shardsSeen"`
	ShardsConverged int            `json:"shardsConverged"`
	MovesInFlight   int            `json:"movesInFlight"`
	LeadersPerNode  map[string]int `json:"leadersPerNode"`
}

type clusterView struct {
	Node       string         `json:"node"`
	Version    string         `json:"version,omitempty"`
	ShardCount int            `json:"shardCount"`
	Ready      bool           `json:"ready"`
	Summary    summary        `json:"summary"`
	Members    []memberStatus `json:"members"`
	Shards     []shardView    `json:"shards"`
}

// nodeReport says whether a member answered the status fan-out.
type nodeReport struct {
	Node  string `json:"node"`
	Addr  string `json:"addr"`
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
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

// ownerResponse is GET /v1/sessions/{id}/owner.
type ownerResponse struct {
	Session  string   `json:"session"`
	Shard    uint32   `json:"shard"`
	Leader   string   `json:"leader"`
	Replicas []string `json:"replicas"`
}

// appendResponse is the answer to POST /api/chat/session/{id}/messages.
type appendResponse struct {
	Messages []struct {
		Seq     uint64 `json:"seq"`
		ID      string `json:"id"`
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	Version uint64 `json:"version"`
}
