package cluster

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/shard"
)

// SingleConfig configures a one-node cluster.
type SingleConfig struct {
	NodeID     string
	DataDir    string
	Listener   net.Listener // raft mux listener
	Advertise  string       // raft address
	ShardCount int
	Host       shard.HostConfig // Limits, Timing, Snapshots; identity fields are filled in here
	Logger     *slog.Logger
}

// StartSingle opens (or, on first start, bootstraps) a cluster of exactly one
// node that holds every shard as the only voter. The shard count is fixed by
// the first start; a later start with another count is refused.
func StartSingle(cfg SingleConfig) (*shard.Host, error) {
	id, err := LoadIdentity(cfg.DataDir)
	fresh := false
	switch {
	case err == ErrNoIdentity:
		fresh = true
		id = Identity{ClusterID: NewClusterID(), ShardCount: cfg.ShardCount, NodeID: cfg.NodeID}
	case err != nil:
		return nil, err
	case id.ShardCount != cfg.ShardCount:
		return nil, fmt.Errorf("data dir %s belongs to a cluster of %d shards; refusing to start with --shards %d (the shard count is fixed when a cluster is bootstrapped)",
			cfg.DataDir, id.ShardCount, cfg.ShardCount)
	case id.NodeID != cfg.NodeID:
		return nil, fmt.Errorf("data dir %s belongs to node %q; refusing to start as %q (raft would see a stranger with this node's data)",
			cfg.DataDir, id.NodeID, cfg.NodeID)
	}
	hc := cfg.Host
	hc.NodeID, hc.DataDir, hc.Listener, hc.Advertise = cfg.NodeID, cfg.DataDir, cfg.Listener, cfg.Advertise
	hc.ClusterID, hc.ShardCount, hc.Logger = id.ClusterID, id.ShardCount, cfg.Logger
	host, err := shard.NewHost(hc)
	if err != nil {
		return nil, err
	}
	for s := 0; s < id.ShardCount; s++ {
		sh, err := host.OpenShard(uint32(s))
		if err != nil {
			host.Close()
			return nil, err
		}
		if fresh {
			if err := sh.Bootstrap([]raft.Server{host.Self()}); err != nil {
				host.Close()
				return nil, fmt.Errorf("bootstrap shard %d: %w", s, err)
			}
		}
	}
	if fresh {
		// Written after every shard is bootstrapped: a crash in between
		// leaves no identity, and the next start bootstraps again, which
		// Bootstrap tolerates for shards that already have state.
		if err := SaveIdentity(cfg.DataDir, id); err != nil {
			host.Close()
			return nil, err
		}
		cfg.Logger.Info("bootstrapped single-node cluster", "cluster", fmt.Sprintf("%016x", id.ClusterID), "shards", id.ShardCount)
	}
	return host, nil
}
