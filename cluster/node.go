package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/shard"
)

// Config describes one node of a cluster.
type Config struct {
	NodeID          string
	DataDir         string
	RaftListener    net.Listener
	RaftAdvertise   string // host:port other nodes dial for raft
	HTTPAdvertise   string // host:port other nodes forward requests to
	GossipBind      string // host:port memberlist listens on
	GossipAdvertise string // host:port other nodes gossip to; default GossipBind
	Join            []string
	BootstrapExpect int
	ShardCount      int
	Replicas        int
	// ShardTuning is what the operator chooses about this node's replicas:
	// raft heartbeat, snapshot policy, log store, session limits. The rest
	// of their configuration derives from it (see shard.Tuning); a zero
	// field takes its default.
	ShardTuning ShardTuning
	// RaftTLS, when set, secures every connection of the raft port: raft
	// traffic and node-to-node RPCs alike. Every node of a cluster must set
	// it, or none.
	RaftTLS *RaftTLS
	Logger  *slog.Logger
	// PeerTLS, when set, is how this node calls other nodes' HTTP ports:
	// over HTTPS, presenting the node's certificate, which is what
	// authorizes the call there.
	PeerTLS *tls.Config
	// MaxDataBytes is the node's data quota (see quota.go); 0 means none.
	MaxDataBytes int64
	// PeerToken returns the bearer token this node presents to other nodes'
	// HTTP ports when tokens are configured and TLS is off; nil sends none.
	PeerToken func() string
	// MaxMoves bounds how many new replicas one node catches up at once,
	// and how many moves one node leads at once (default 2).
	MaxMoves int
	// DeadNodeGrace is how long a dead node keeps its replicas before they
	// are placed elsewhere (default 60s).
	DeadNodeGrace time.Duration
	// SessionTTL removes sessions not written for this long; 0 keeps them
	// until an expiry of their own. Either way the node looks for sessions
	// due on the shards it leads every second (see expiryLoop).
	SessionTTL time.Duration
	// ReconcileInterval is how often shard leaders compare their groups
	// with the placement (default 1s); BackstopInterval how often a node
	// looks for replicas it should drop (default 10s).
	ReconcileInterval time.Duration
	BackstopInterval  time.Duration
	// ReconnectInterval is how often a node tries to reach members gossip
	// has declared dead (default 5s).
	ReconnectInterval time.Duration
	// TuneGossip adjusts memberlist's LAN defaults (tests use faster probes).
	TuneGossip func(*memberlist.Config)
	// GossipKeys, when given, encrypt and authenticate all gossip (AES-GCM)
	// and make every node refuse plain gossip. Each key is 16, 24 or 32
	// bytes. The first is the primary: messages are encrypted with it.
	// Messages under any of the keys are accepted, which is how keys are
	// rotated by rolling restarts: add the new key after the old one
	// everywhere, then put it first everywhere, then drop the old one.
	GossipKeys [][]byte
	// GossipLabel is carried by every gossip packet and stream; traffic
	// with another label is dropped. Default DefaultGossipLabel.
	GossipLabel string

	// tuneHost adjusts the host configuration derived from the above
	// (tests use longer apply and read bounds).
	tuneHost func(*shard.HostConfig)
}

// ShardTuning is shard.Tuning, named here so that a Config can be filled
// in without package shard.
type ShardTuning = shard.Tuning

// RaftTLS is shard.MuxTLS, the TLS configurations of the raft port, named
// here for the same reason.
type RaftTLS = shard.MuxTLS

// The kinds of raft log store, for ShardTuning.LogStore.
const (
	// LogStoreShared keeps the raft logs of all the node's replicas in one
	// write-ahead log. The default for a new data directory.
	LogStoreShared = shard.LogStoreShared
	// LogStorePerShard gives each replica a raft-boltdb file of its own.
	LogStorePerShard = shard.LogStorePerShard
)

func (c *Config) maxMoves() int                { return orDefault(c.MaxMoves, 2) }
func (c *Config) deadNodeGrace() time.Duration { return orDefault(c.DeadNodeGrace, time.Minute) }
func (c *Config) reconcileInterval() time.Duration {
	return orDefault(c.ReconcileInterval, time.Second)
}
func (c *Config) backstopInterval() time.Duration {
	return orDefault(c.BackstopInterval, 10*time.Second)
}
func (c *Config) reconnectInterval() time.Duration {
	return orDefault(c.ReconnectInterval, 5*time.Second)
}

func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Node is this process's membership in a cluster: its shard replicas, its
// gossip view of the other nodes, and the loops that form the cluster and
// spread shard leadership.
//
// A Node is safe for concurrent use; its loops run on goroutines of their
// own from Start until Close. Apply, Read and the replica calls block as
// the shard's do, calls to other nodes are bounded by their context or a
// timeout of their own, and Drain blocks until the node has handed off its
// shards or ctx ends. Close and Kill block until every loop has returned
// and every replica has shut down.
type Node struct {
	cfg     Config
	logger  *slog.Logger
	host    *shard.Host
	ml      *memberlist.Memberlist
	members *members

	mu       sync.Mutex
	identity Identity
	// incarnation is the identity's, or for a node not yet formed a random
	// one drawn at start.
	incarnation uint64
	formed      bool
	formedCh    chan struct{}
	draining    bool
	incoming    map[uint32]time.Time // replicas created for a leader to add, by shard

	peers *peerClient
	moves moves
	// overQuota is this node's data-quota alarm; see quota.go.
	overQuota atomic.Bool

	metaKick chan struct{}
	fatal    chan error
	stop     chan struct{}
	wg       sync.WaitGroup
}

// Start opens the node's replicas from disk, joins gossip, and starts the
// loops that form or join the cluster. It returns once gossip is up; use
// Formed to wait for cluster membership and Fatal for errors that must stop
// the process (such as a shard-count mismatch).
func Start(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, logger: cfg.Logger, members: newMembers(cfg.Logger),
		incoming: map[uint32]time.Time{}, peers: newPeerClient(cfg.PeerTLS, cfg.PeerToken), moves: moves{byID: map[uint32]*Move{}},
		formedCh: make(chan struct{}), metaKick: make(chan struct{}, 1),
		fatal: make(chan error, 1), stop: make(chan struct{})}

	id, err := LoadIdentity(cfg.DataDir)
	switch {
	case errors.Is(err, ErrNoIdentity):
	case err != nil:
		return nil, err
	case id.ShardCount != cfg.ShardCount:
		return nil, fmt.Errorf("data dir %s belongs to a cluster of %d shards; refusing to start with --shards %d (the shard count is fixed when a cluster is bootstrapped)",
			cfg.DataDir, id.ShardCount, cfg.ShardCount)
	case id.NodeID != cfg.NodeID:
		return nil, fmt.Errorf("data dir %s belongs to node %q; refusing to start as %q",
			cfg.DataDir, id.NodeID, cfg.NodeID)
	default:
		n.identity, n.formed = id, true
		close(n.formedCh)
	}
	n.incarnation = n.identity.Incarnation
	if n.incarnation == 0 {
		n.incarnation = NewClusterID() // any random non-zero number
	}

	host, err := shard.NewHost(n.hostConfig())
	if err != nil {
		return nil, err
	}
	n.host = host
	if n.formed {
		if err := n.openExistingShards(); err != nil {
			host.Close()
			return nil, err
		}
	}
	if err := n.startGossip(); err != nil {
		host.Close()
		return nil, err
	}
	n.wg.Add(4)
	go n.joinLoop()
	go n.metaLoop()
	go n.membershipLoop()
	go n.reconnectLoop()
	n.wg.Add(4)
	go n.balanceLoop()
	go n.replicaBackstopLoop()
	go n.reconcileLoop()
	go n.expiryLoop()
	if cfg.MaxDataBytes > 0 {
		n.wg.Add(1)
		go n.quotaLoop()
	}
	return n, nil
}

// hostConfig is the configuration of the node's shard host: its identity
// and raft port from the node's, its replicas' settings derived from the
// operator's tuning.
func (n *Node) hostConfig() shard.HostConfig {
	t := n.cfg.ShardTuning.WithDefaults()
	hc := shard.HostConfig{
		NodeID: n.cfg.NodeID, DataDir: n.cfg.DataDir, Listener: n.cfg.RaftListener, Advertise: n.cfg.RaftAdvertise,
		ClusterID: n.identity.ClusterID, ShardCount: n.cfg.ShardCount, Logger: n.cfg.Logger,
		Limits: t.Limits, Timing: t.Timing(), Snapshots: t.Snapshots(), LogStore: t.LogStore, TLS: n.cfg.RaftTLS,
		AddressOf:    addressBook{n.members},
		OnLeadership: func(uint32, bool) { n.kickMeta() },
	}
	if n.cfg.tuneHost != nil {
		n.cfg.tuneHost(&hc)
	}
	return hc
}

func (c *Config) validate() error {
	switch {
	case c.NodeID == "" || len(c.NodeID) > 64:
		return errors.New("node id must be 1 to 64 bytes")
	case c.ShardCount < 1 || c.ShardCount > 1024:
		return errors.New("shard count must be 1 to 1024")
	case c.Replicas < 1:
		return errors.New("replicas must be at least 1")
	case c.BootstrapExpect < 1:
		return errors.New("bootstrap-expect must be at least 1")
	case c.SessionTTL < 0:
		return errors.New("session ttl must not be negative")
	case c.Logger == nil:
		return errors.New("cluster: Logger is required")
	}
	for _, a := range []string{c.RaftAdvertise, c.HTTPAdvertise} {
		if len(a) > 64 {
			return fmt.Errorf("address %q is too long", a)
		}
	}
	return c.validateGossip()
}

func (n *Node) openExistingShards() error {
	ids, err := n.host.ExistingShards()
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := n.host.OpenShard(id); err != nil {
			return err
		}
	}
	n.logger.Info("opened local replicas", "count", len(ids))
	return nil
}

func (n *Node) startGossip() error {
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.cfg.NodeID
	host, port, err := splitHostPort(n.cfg.GossipBind)
	if err != nil {
		return fmt.Errorf("gossip address: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	adv := n.cfg.GossipAdvertise
	if adv == "" {
		adv = n.cfg.GossipBind
	}
	if host, port, err = splitHostPort(adv); err != nil {
		return fmt.Errorf("gossip advertise address: %w", err)
	}
	if host, err = advertiseIP(host); err != nil {
		return fmt.Errorf("gossip advertise address: %w", err)
	}
	if port != 0 { // port 0: let memberlist advertise the port it bound
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	// A container that restarts may come back on another IP; let it
	// reclaim its name once memberlist has declared the old address dead.
	mc.DeadNodeReclaimTime = 10 * time.Second
	mc.Delegate = &metaDelegate{meta: n.localMeta, logger: n.logger}
	mc.Events = n.members
	mc.Logger = newGossipLogger(n.logger)
	if n.cfg.TuneGossip != nil {
		n.cfg.TuneGossip(mc)
	}
	// Label and keys come last, so tuning cannot weaken them.
	if err := n.cfg.secureGossip(mc); err != nil {
		return err
	}
	// Members of another cluster are ignored from the first event on.
	n.members.self = n.cfg.NodeID
	if n.formed {
		n.members.setCluster(n.identity.ClusterID)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("start gossip: %w", err)
	}
	n.ml = ml
	return nil
}

// advertiseIP resolves a host name (a compose service name, say) to the IP
// memberlist must advertise; memberlist accepts only IPs there. An unspecified
// address is left empty so memberlist picks the private interface itself.
func advertiseIP(host string) (string, error) {
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return "", nil
		}
		return host, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return "", err
	}
	for _, ip := range ips {
		if ip.To4() != nil {
			return ip.String(), nil
		}
	}
	return ips[0].String(), nil
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return h, port, err
}

// localMeta is the metadata this node gossips now.
func (n *Node) localMeta() Meta {
	n.mu.Lock()
	id, formed, draining := n.identity, n.formed, n.draining
	n.mu.Unlock()
	m := Meta{NodeID: n.cfg.NodeID, RaftAddr: n.cfg.RaftAdvertise, HTTPAddr: n.cfg.HTTPAdvertise,
		ClusterID: id.ClusterID, Incarnation: n.incarnation, ShardCount: n.cfg.ShardCount, BootstrapExpect: n.cfg.BootstrapExpect,
		Formed: formed, Settled: id.Settled, Draining: draining, OverQuota: n.overQuota.Load()}
	if n.host != nil {
		m.Leads = shardBitmap(n.cfg.ShardCount, func(s uint32) bool {
			r := n.host.Shard(s)
			return r != nil && r.IsLeader()
		})
		m.Hosts = shardBitmap(n.cfg.ShardCount, func(s uint32) bool { return n.host.Shard(s) != nil })
	}
	return m
}

func (n *Node) kickMeta() {
	select {
	case n.metaKick <- struct{}{}:
	default:
	}
}

// metaLoop re-gossips this node's metadata after changes (leadership,
// formation), coalescing bursts such as many shards electing at once.
func (n *Node) metaLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case <-n.metaKick:
		}
		select {
		case <-n.stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if err := n.ml.UpdateNode(2 * time.Second); err != nil {
			n.logger.Debug("gossip metadata update", "err", err)
		}
	}
}

// joinLoop contacts the --join seeds until one answers: containers start in
// any order, so a seed that is not up yet is retried rather than fatal.
func (n *Node) joinLoop() {
	defer n.wg.Done()
	if len(n.cfg.Join) == 0 {
		return
	}
	for attempt := 0; ; attempt++ {
		joined, err := n.ml.Join(n.cfg.Join)
		if joined > 0 {
			n.logger.Info("joined gossip", "contacted", joined)
			return
		}
		if attempt%10 == 0 {
			n.logger.Warn("no --join seed answered yet; retrying", "seeds", n.cfg.Join, "err", err)
		}
		select {
		case <-n.stop:
			return
		case <-time.After(time.Second):
		}
	}
}

// reconnectLoop re-joins members memberlist has declared dead. memberlist
// never probes a dead node again, so after a network partition heals the
// two sides would stay apart; like Serf's reconnector, this tries the dead
// members' gossip addresses (and the --join seeds) every few seconds until
// they answer. A node that left on purpose is not chased.
func (n *Node) reconnectLoop() { n.everyRound(n.cfg.reconnectInterval, n.reconnectRound) }

func (n *Node) reconnectRound() {
	var addrs []string
	for _, m := range n.members.list() {
		if m.State == StateDead && m.NodeID != n.cfg.NodeID && m.GossipAddr != "" {
			addrs = append(addrs, m.GossipAddr)
		}
	}
	if len(addrs) == 0 {
		return
	}
	if joined, err := n.ml.Join(addrs); joined > 0 {
		n.logger.Info("reconnected to members declared dead", "contacted", joined)
	} else {
		n.logger.Debug("dead members still unreachable", "addrs", addrs, "err", err)
	}
}

// everyRound runs round every interval() from the moment the node belongs
// to a cluster until it stops. Rounds of one loop never overlap.
func (n *Node) everyRound(interval func() time.Duration, round func()) {
	defer n.wg.Done()
	select {
	case <-n.formedCh:
	case <-n.stop:
		return
	}
	for {
		select {
		case <-n.stop:
			return
		case <-time.After(interval()):
		}
		round()
	}
}

// untilStop is a context that ends when the node stops, for the calls of
// a loop's round; cancel releases it once the round is done.
func (n *Node) untilStop() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// addressBook resolves a peer's current raft address from gossip.
type addressBook struct{ m *members }

func (a addressBook) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	m, ok := a.m.get(string(id))
	if !ok || m.RaftAddr == "" {
		return "", fmt.Errorf("node %s not known to gossip", id)
	}
	return raft.ServerAddress(m.RaftAddr), nil
}

// GossipAddr is the address memberlist listens on (for --join).
func (n *Node) GossipAddr() string { return n.ml.LocalNode().Address() }

// Host is the node's shard host.
func (n *Node) Host() *shard.Host { return n.host }

// Formed is closed once the node belongs to a cluster.
func (n *Node) Formed() <-chan struct{} { return n.formedCh }

// Fatal delivers an error after which the node must stop.
func (n *Node) Fatal() <-chan error { return n.fatal }

func (n *Node) fail(err error) {
	select {
	case n.fatal <- err:
	default:
	}
}

// Close leaves gossip and shuts down every replica, keeping all data.
func (n *Node) Close() error {
	select {
	case <-n.stop:
		return nil
	default:
	}
	close(n.stop)
	n.wg.Wait()
	var errs []error
	// Gossip the final metadata (a drained node holds no replica now)
	// before leaving, so others do not remember a stale count. Both wait
	// for another member to hear them, so a lone node skips them.
	if n.ml.NumMembers() > 1 {
		if err := n.ml.UpdateNode(time.Second); err != nil {
			n.logger.Debug("final gossip update", "err", err)
		}
		if err := n.ml.Leave(time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, n.ml.Shutdown(), n.host.Close())
	return errors.Join(errs...)
}

// Kill stops the node without leaving gossip, as a crash would (for tests).
func (n *Node) Kill() {
	close(n.stop)
	n.wg.Wait()
	n.ml.Shutdown()
	n.host.Close()
}
