package shard

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/raftlog"
)

// HostConfig configures all replicas of one node.
type HostConfig struct {
	NodeID     string
	DataDir    string // replicas live in DataDir/shards/NNN
	Listener   net.Listener
	Advertise  string // raft address other nodes dial
	ClusterID  uint64
	ShardCount int
	Limits     fsm.Limits
	Timing     Timing
	Snapshots  Snapshots
	Logger     *slog.Logger
	// LogStore is LogStoreShared or LogStorePerShard; empty keeps what the
	// data directory already uses (shared for a new one).
	LogStore string

	// AddressOf and OnLeadership are passed to every replica; see Config.
	AddressOf    raft.ServerAddressProvider
	OnLeadership func(shard uint32, leader bool)
	// TLS, when set, secures every connection of the raft port: raft
	// traffic and node-to-node RPCs alike (see Mux.UseTLS). Every node of a
	// cluster must set it, or none.
	TLS *MuxTLS
}

// Host holds the replicas this node runs and the mux they share.
//
// A Host is safe for concurrent use: replicas may be opened and closed
// while other goroutines use the others. Apply and Read block as the
// replica's do (Apply on a follower also waits for the leader's node to
// answer over the raft port); Close blocks until every replica has shut
// down.
type Host struct {
	cfg       HostConfig
	mux       *Mux
	advertise raft.ServerAddress
	logStore  string
	sharedLog *raftlog.Log // nil with per-shard logs
	nodeRPC   *StreamLayer // node-to-node RPCs on the raft port
	// nodeServer serves them (nodeserver.go); close stops its workers.
	nodeServer *nodeServer
	peers      *nodeClients
	beats      *heartbeatSender

	mu     sync.RWMutex
	shards map[uint32]*Shard

	serveDone   chan struct{}
	monitorStop chan struct{}
	probe       leaderProbe    // see failover.go
	probes      sync.WaitGroup // probe goroutines, waited for by Close
	closeOnce   sync.Once
	closeErr    error
}

// NewHost starts the raft mux on cfg.Listener. It hosts no replica until
// OpenShard is called.
func NewHost(cfg HostConfig) (*Host, error) {
	if cfg.ShardCount < 1 {
		return nil, errors.New("shard count must be at least 1")
	}
	adv, err := net.ResolveTCPAddr("tcp", cfg.Advertise)
	if err != nil {
		return nil, fmt.Errorf("raft advertise address %q: %w", cfg.Advertise, err)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("a data directory is required")
	}
	kind, err := chooseLogStore(cfg.LogStore, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	var shared *raftlog.Log
	if kind == LogStoreShared {
		shared, err = raftlog.Open(sharedLogDir(cfg.DataDir), raftlog.Options{Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("open the raft log: %w", err)
		}
	}
	cfg.Logger.Info("raft log store", "kind", kind)
	h := &Host{
		cfg:         cfg,
		mux:         NewMux(cfg.Listener, adv, cfg.ClusterID, cfg.Logger),
		advertise:   raft.ServerAddress(cfg.Advertise),
		logStore:    kind,
		sharedLog:   shared,
		shards:      map[uint32]*Shard{},
		serveDone:   make(chan struct{}),
		monitorStop: make(chan struct{}),
	}
	if cfg.TLS != nil {
		h.mux.UseTLS(cfg.TLS.Server, cfg.TLS.Client)
		cfg.Logger.Info("raft port uses mutual TLS")
	}
	h.peers = newNodeClients(h.mux)
	appends := newNodeClients(h.mux)
	h.peers.onPeerClose, appends.onPeerClose = h.peerClosed, h.peerClosed
	h.beats = newHeartbeatSender(h.peers, appends, heartbeatPeriod(cfg.Timing))
	h.nodeRPC, err = h.mux.Listen(nodeServiceID)
	if err != nil {
		if shared != nil {
			shared.Close()
		}
		return nil, err
	}
	h.nodeServer = newNodeServer((&nodeService{h: h}).methods(), nodeWorkers)
	go serveNodeRPC(h.nodeRPC, h.nodeServer.serveCodec, h.peerClosed, cfg.Logger)
	go h.monitorFollowers(h.monitorStop, cfg.Logger)
	go func() {
		defer close(h.serveDone)
		h.mux.Serve()
	}()
	return h, nil
}

// NodeID is this node's id.
func (h *Host) NodeID() string { return h.cfg.NodeID }

// RaftAddr is the raft address this node advertises.
func (h *Host) RaftAddr() raft.ServerAddress { return h.advertise }

// LogStore is the kind of raft log store this node runs (LogStoreShared or
// LogStorePerShard).
func (h *Host) LogStore() string { return h.logStore }

// SharedLog is the node's shared raft log, nil with per-shard logs.
func (h *Host) SharedLog() *raftlog.Log { return h.sharedLog }

// HeartbeatStats counts the heartbeats this node's replicas have sent to
// other nodes and the node RPCs that carried them.
func (h *Host) HeartbeatStats() (batches, beats uint64) {
	return h.beats.batches.Load(), h.beats.beats.Load()
}

// ReadConfirmations counts the linearizable read rounds of this node's
// leaders confirmed by their read lease and by a round of heartbeats.
func (h *Host) ReadConfirmations() (byLease, byRound uint64) {
	return h.beats.leaseReads.Load(), h.beats.roundReads.Load()
}

// SharedAppends counts the raft appends this node's replicas have sent
// over the node's shared connections rather than their group's own.
func (h *Host) SharedAppends() uint64 { return h.beats.sharedAppends.Load() }

// ShardCount is the fixed number of shards in the cluster.
func (h *Host) ShardCount() int { return h.cfg.ShardCount }

// ShardFor maps a session id onto its shard.
func (h *Host) ShardFor(sessionID string) uint32 { return ShardFor(sessionID, h.cfg.ShardCount) }

// Mux is the node's raft connection demultiplexer.
func (h *Host) Mux() *Mux { return h.mux }

// OpenShard starts the local replica of shard id (restoring it from disk if it
// exists). Opening a shard that is already open returns it.
func (h *Host) OpenShard(id uint32) (*Shard, error) {
	if int(id) >= h.cfg.ShardCount {
		return nil, fmt.Errorf("shard %d out of range (cluster has %d)", id, h.cfg.ShardCount)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.shards[id]; s != nil {
		return s, nil
	}
	layer, err := h.mux.Listen(id)
	if err != nil {
		return nil, err
	}
	s, err := Open(Config{
		ShardID: id, NodeID: h.cfg.NodeID, Dir: h.shardDir(id), Layer: layer,
		Limits: h.cfg.Limits, Timing: h.cfg.Timing, Snapshots: h.cfg.Snapshots, Logger: h.cfg.Logger,
		AddressOf: h.cfg.AddressOf, OnLeadership: h.cfg.OnLeadership, SharedLog: h.sharedLog,
		ReadIndexFrom: h.peers.readIndex, heartbeats: h.beats,
	})
	if err != nil {
		layer.Close()
		return nil, err
	}
	h.shards[id] = s
	return s, nil
}

func (h *Host) shardDir(id uint32) string {
	return filepath.Join(h.cfg.DataDir, "shards", fmt.Sprintf("%03d", id))
}

// SetClusterID sets the cluster id raft connections carry, once the node
// has learned which cluster it belongs to.
func (h *Host) SetClusterID(id uint64) { h.mux.SetClusterID(id) }

// ExistingShards lists the shards that have a replica directory on disk.
func (h *Host) ExistingShards() ([]uint32, error) {
	entries, err := os.ReadDir(filepath.Join(h.cfg.DataDir, "shards"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, e := range entries {
		n, err := strconv.ParseUint(e.Name(), 10, 32)
		if e.IsDir() && err == nil && int(n) < h.cfg.ShardCount {
			out = append(out, uint32(n))
		}
	}
	return out, nil
}

// Shard returns the local replica of shard id, or nil.
func (h *Host) Shard(id uint32) *Shard {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.shards[id]
}

// Shards returns the local replicas ordered by shard id.
func (h *Host) Shards() []*Shard {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*Shard, 0, len(h.shards))
	for id := uint32(0); int(id) < h.cfg.ShardCount; id++ {
		if s := h.shards[id]; s != nil {
			out = append(out, s)
		}
	}
	return out
}

// Self is this node as a raft voter.
func (h *Host) Self() raft.Server {
	return raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(h.cfg.NodeID), Address: h.advertise}
}

// Close shuts down every replica and the mux, keeping all data. Calling it
// again returns the first call's result.
func (h *Host) Close() error {
	h.closeOnce.Do(func() { h.closeErr = h.close() })
	return h.closeErr
}

func (h *Host) close() error {
	h.probe.mu.Lock() // no probe starts once monitorStop is closed (peerClosed)
	close(h.monitorStop)
	h.probe.mu.Unlock()
	h.probes.Wait()
	h.mu.Lock()
	shards := h.shards
	h.shards = map[uint32]*Shard{}
	h.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, 0, len(shards))
	var emu sync.Mutex
	for _, s := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Close(); err != nil {
				emu.Lock()
				errs = append(errs, fmt.Errorf("shard %d: %w", s.ID(), err))
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	h.nodeServer.stop()
	h.peers.close()
	h.beats.appends.close()
	errs = append(errs, h.mux.Close())
	<-h.serveDone
	if h.sharedLog != nil {
		errs = append(errs, h.sharedLog.Close())
	}
	return errors.Join(errs...)
}

// ShardStatus reports the local replica of shard id, if hosted here.
func (h *Host) ShardStatus(id uint32) (Status, bool) {
	s := h.Shard(id)
	if s == nil {
		return Status{}, false
	}
	return s.Status(), true
}

// CloseShard shuts down the local replica of shard id and, when deleteData
// is set, removes its directory. The caller decides whether the data may go:
// only once the group's committed configuration no longer lists this node.
func (h *Host) CloseShard(id uint32, deleteData bool) error {
	h.mu.Lock()
	s := h.shards[id]
	delete(h.shards, id)
	h.mu.Unlock()
	if s != nil {
		if err := s.Close(); err != nil {
			return fmt.Errorf("shard %d: %w", id, err)
		}
	}
	if !deleteData {
		return nil
	}
	if h.sharedLog != nil {
		if err := h.sharedLog.DropShard(id); err != nil {
			return fmt.Errorf("shard %d: drop its raft log: %w", id, err)
		}
	}
	return os.RemoveAll(h.shardDir(id))
}
