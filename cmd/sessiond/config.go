package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/httpapi"
)

// config is the server's configuration. Every flag --some-name can also be
// set with the environment variable SESSIOND_SOME_NAME; a flag on the command
// line wins over the environment.
type config struct {
	NodeID            string
	DataDir           string
	HTTPAddr          string
	RaftAddr          string
	GossipAddr        string
	AdvertiseAddr     string
	Join              []string
	BootstrapExpect   int
	Shards            int
	Replicas          int
	SessionTTL        time.Duration
	RaftHeartbeat     time.Duration
	ReadLease         bool
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	LogStore          string
	DrainTimeout      time.Duration
	DeadNodeGrace     time.Duration
	MaxMoves          int
	// MaxInFlightPerShard and MaxInFlight bound the reads and writes this
	// node serves at once, per shard and in all; see httpapi.Config.
	MaxInFlightPerShard int
	MaxInFlight         int
	// H2C accepts HTTP/2 over cleartext (prior knowledge) on the HTTP
	// port, next to HTTP/1.1.
	H2C bool
	// PprofAddr serves net/http/pprof on a listener of its own when set.
	// Profiles and heap dumps expose memory contents (session data), so a
	// non-loopback address needs PprofAllowRemote.
	PprofAddr        string
	PprofAllowRemote bool
	LogLevel         string
	LogFormat        string
	// TokenFile holds the bearer tokens clients must present ("SCOPE
	// TOKEN" lines); empty serves every request without one.
	TokenFile string
	// TLSCA, TLSCert and TLSKey turn on mutual TLS between nodes (raft port
	// and node-to-node HTTP) and HTTPS on the client port; all or none.
	TLSCA, TLSCert, TLSKey string
	// ClientTLSCert and ClientTLSKey, when given, are what the client port
	// presents instead of the node certificate (say, one from a public CA).
	ClientTLSCert, ClientTLSKey string
	// GossipKeys encrypt gossip; the first is the primary.
	GossipKeys [][]byte
	// SessionWriteRate and SessionWriteBurst bound the writes one session
	// makes through this node; see httpapi.Config.
	SessionWriteRate  float64
	SessionWriteBurst int
	// AlarmWebhook receives fired alarms; "" delivers none.
	AlarmWebhook string
	// MaxStreams bounds change streams and blocking reads.
	MaxStreams int
	// MaxConns and MaxConnsPerIP bound the client connections held open.
	MaxConns, MaxConnsPerIP int
	// MaxDataBytes is the node's data quota; 0 means none.
	MaxDataBytes int64
	// Insecure lets a node listen on addresses other hosts reach without
	// TLS and a gossip key.
	Insecure bool
}

func parseConfig(args []string) (*config, error) {
	host, _ := os.Hostname()
	c := &config{}
	fs := flag.NewFlagSet("sessiond", flag.ContinueOnError)
	fs.Usage = func() { printUsage(fs.Output(), fs) }
	var join, gossipKey, gossipKeyFile string
	fs.StringVar(&c.NodeID, "node-id", host, "unique id of this node (default: hostname)")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory for raft logs, snapshots and cluster identity")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "HTTP API listen address")
	fs.StringVar(&c.RaftAddr, "raft-addr", "127.0.0.1:7000", "raft listen address (one port for all shards)")
	fs.StringVar(&c.GossipAddr, "gossip-addr", "127.0.0.1:7946", "memberlist gossip listen address")
	fs.StringVar(&c.AdvertiseAddr, "advertise-addr", "", "host other nodes use to reach this one (default: the listen host)")
	fs.StringVar(&join, "join", "", "comma-separated gossip addresses of existing nodes")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", 1, "number of nodes that form a new cluster")
	fs.IntVar(&c.Shards, "shards", 16, "number of shards, fixed when the cluster is bootstrapped (1-1024)")
	fs.IntVar(&c.Replicas, "replicas", 3, "replicas per shard, capped by the number of nodes")
	fs.DurationVar(&c.SessionTTL, "session-ttl", 0, "remove sessions not written for this long (0 keeps them forever)")
	fs.DurationVar(&c.RaftHeartbeat, "raft-heartbeat", time.Second, "raft heartbeat and election timeout")
	fs.BoolVar(&c.ReadLease, "read-lease", true, "let a shard leader confirm linearizable reads by its read lease (half --raft-heartbeat after its followers last answered) instead of a heartbeat round; turn off where a machine can be suspended or its clock stopped for longer than that")
	fs.Uint64Var(&c.SnapshotThreshold, "snapshot-threshold", 8192, "log entries between shard snapshots")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", time.Minute, "how often each shard checks --snapshot-threshold (raft adds up to as much again in jitter)")
	fs.StringVar(&c.LogStore, "log-store", "", `raft log store: "shared" (one write-ahead log for all shards of the node) or "per-shard" (a raft-boltdb file per shard); default: what the data directory already holds, "shared" for a new one`)
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 2*time.Minute, "how long SIGTERM or a drain request waits for replicas to move off before exiting")
	fs.DurationVar(&c.DeadNodeGrace, "dead-node-grace", time.Minute, "how long a dead node keeps its replicas before they are placed elsewhere")
	fs.IntVar(&c.MaxMoves, "max-moves", 2, "replica moves one node leads, or catches up, at once")
	fs.IntVar(&c.MaxInFlightPerShard, "max-inflight-per-shard", httpapi.DefaultMaxInFlightPerShard, "reads and writes this node serves at once on one shard; beyond it requests get 503 overloaded")
	fs.IntVar(&c.MaxInFlight, "max-inflight", httpapi.DefaultMaxInFlight, "reads and writes this node serves at once over all shards; beyond it requests get 503 overloaded")
	fs.BoolVar(&c.H2C, "h2c", true, "also accept HTTP/2 over cleartext (h2c, prior knowledge) on --http-addr, next to HTTP/1.1; --h2c=false serves HTTP/1.1 only")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "serve net/http/pprof on this address (off when empty; loopback only unless --pprof-allow-remote)")
	fs.BoolVar(&c.PprofAllowRemote, "pprof-allow-remote", false, "allow --pprof-addr on a non-loopback address (profiles expose memory contents)")
	fs.StringVar(&c.TokenFile, "token-file", "", "file of bearer tokens, one \"SCOPE TOKEN\" a line (scopes read, data, admin); when set every route but /healthz and /readyz needs one (reloaded on SIGHUP)")
	fs.StringVar(&c.TLSCA, "tls-ca", "", "PEM file of the cluster CA; with --tls-cert and --tls-key turns on mutual TLS between nodes and HTTPS for clients (reloaded on SIGHUP)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate of this node, signed by --tls-ca")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM key of --tls-cert")
	fs.StringVar(&c.ClientTLSCert, "client-tls-cert", "", "PEM certificate the client port presents instead of --tls-cert (for example one from a public CA)")
	fs.StringVar(&c.ClientTLSKey, "client-tls-key", "", "PEM key of --client-tls-cert")
	fs.StringVar(&gossipKey, "gossip-key", "", "base64 gossip encryption key (16, 24 or 32 bytes); a comma-separated list accepts all and encrypts with the first, for rotation")
	fs.Float64Var(&c.SessionWriteRate, "session-write-rate", 100, "writes a second one session may make through this node after its burst; beyond it 429 rate_limited (0: no limit)")
	fs.IntVar(&c.SessionWriteBurst, "session-write-burst", 200, "writes one session may make at once through this node")
	fs.StringVar(&c.AlarmWebhook, "alarm-webhook", "", "URL that fired alarms are POSTed to, at least once, with an Idempotency-Key header (off when empty)")
	fs.IntVar(&c.MaxStreams, "max-streams", httpapi.DefaultMaxStreams, "change streams and blocking reads this node serves at once; beyond it 503 overloaded")
	fs.IntVar(&c.MaxConns, "max-conns", 8192, "client connections this node holds open at most; beyond it new ones are refused")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", 512, "client connections one IP address may hold open (loopback is exempt)")
	maxData := byteSize(2 << 30)
	fs.Var(&maxData, "max-data-bytes", "session data this node may hold in memory (such as 512MiB or 2GiB; 0 for no limit); beyond it writes to its shards get 507 until data is deleted")
	fs.StringVar(&gossipKeyFile, "gossip-key-file", "", "file holding --gossip-key's value (keeps the key out of the process list and environment)")
	fs.BoolVar(&c.Insecure, "insecure", false, "allow listening on addresses other hosts reach without TLS and a gossip key")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	if err := applyEnv(fs, args); err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, j := range strings.Split(join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			c.Join = append(c.Join, j)
		}
	}
	c.MaxDataBytes = int64(maxData)
	var keyErr error
	if gossipKeyFile != "" {
		if gossipKey != "" {
			return nil, errors.New("--gossip-key and --gossip-key-file exclude each other")
		}
		b, err := os.ReadFile(gossipKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--gossip-key-file: %w", err)
		}
		gossipKey = strings.TrimSpace(string(b))
		if gossipKey == "" {
			return nil, fmt.Errorf("--gossip-key-file %s is empty", gossipKeyFile)
		}
	}
	if gossipKey != "" {
		if c.GossipKeys, keyErr = cluster.ParseGossipKeys(gossipKey); keyErr != nil {
			keyErr = fmt.Errorf("--gossip-key: %w", keyErr)
		}
	}
	return c, errors.Join(keyErr, c.validate())
}

// applyEnv sets every flag not given on the command line from its
// SESSIOND_* variable.
func applyEnv(fs *flag.FlagSet, args []string) error {
	given := map[string]bool{}
	for _, a := range args {
		name := strings.TrimLeft(a, "-")
		if name == a {
			continue
		}
		name, _, _ = strings.Cut(name, "=")
		given[name] = true
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok && !given[f.Name] && err == nil {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %v", env, v, serr)
			}
		}
	})
	return err
}

func (c *config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.NodeID == "" {
		bad("--node-id must not be empty")
	}
	if c.DataDir == "" {
		bad("--data-dir must not be empty")
	}
	for name, addr := range map[string]string{"--http-addr": c.HTTPAddr, "--raft-addr": c.RaftAddr, "--gossip-addr": c.GossipAddr} {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			bad("%s %q must be host:port", name, addr)
		}
	}
	if c.Shards < 1 || c.Shards > 1024 {
		bad("--shards must be between 1 and 1024, not %d", c.Shards)
	}
	if c.Replicas < 1 || c.Replicas > 7 {
		bad("--replicas must be between 1 and 7, not %d", c.Replicas)
	}
	if c.BootstrapExpect < 1 {
		bad("--bootstrap-expect must be at least 1")
	}
	if c.SessionTTL < 0 {
		bad("--session-ttl must not be negative")
	}
	if c.RaftHeartbeat < 50*time.Millisecond {
		bad("--raft-heartbeat must be at least 50ms")
	}
	if c.DrainTimeout < 0 || c.DeadNodeGrace < 0 {
		bad("--drain-timeout and --dead-node-grace must not be negative")
	}
	if c.MaxMoves < 1 {
		bad("--max-moves must be at least 1")
	}
	if c.SnapshotThreshold < 16 {
		bad("--snapshot-threshold must be at least 16")
	}
	if c.LogStore != "" && c.LogStore != cluster.LogStoreShared && c.LogStore != cluster.LogStorePerShard {
		bad("--log-store must be %q or %q", cluster.LogStoreShared, cluster.LogStorePerShard)
	}
	if c.SnapshotInterval < 100*time.Millisecond {
		bad("--snapshot-interval must be at least 100ms")
	}
	if c.SessionWriteRate < 0 || c.SessionWriteBurst < 1 {
		bad("--session-write-rate must not be negative and --session-write-burst must be at least 1")
	}
	if c.AlarmWebhook != "" {
		if u, err := url.Parse(c.AlarmWebhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("--alarm-webhook %q must be an http:// or https:// URL", c.AlarmWebhook)
		}
	}
	if c.MaxStreams < 1 {
		bad("--max-streams must be at least 1")
	}
	if c.MaxConns < 1 || c.MaxConnsPerIP < 1 {
		bad("--max-conns and --max-conns-per-ip must be at least 1")
	}
	if c.MaxInFlightPerShard < 1 || c.MaxInFlight < 1 {
		bad("--max-inflight-per-shard and --max-inflight must be at least 1")
	}
	if c.PprofAddr != "" {
		if err := c.checkPprofAddr(); err != nil {
			errs = append(errs, err)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("--log-level must be debug, info, warn or error")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("--log-format must be text or json")
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			bad("--join address %q must be host:port", j)
		}
	}
	if len(c.NodeID) > 64 {
		bad("--node-id must be at most 64 bytes")
	}
	for _, flag := range []string{"--raft-addr", "--http-addr", "--gossip-addr"} {
		if _, err := c.advertise(flag); err != nil {
			errs = append(errs, err)
		}
	}
	if n := countSet(c.TLSCA, c.TLSCert, c.TLSKey); n != 0 && n != 3 {
		bad("--tls-ca, --tls-cert and --tls-key go together")
	}
	if countSet(c.ClientTLSCert, c.ClientTLSKey) == 1 {
		bad("--client-tls-cert and --client-tls-key go together")
	}
	if c.ClientTLSCert != "" && !c.TLS() {
		bad("--client-tls-cert needs --tls-ca, --tls-cert and --tls-key")
	}
	if err := c.checkExposure(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// TLS reports whether the node runs with TLS.
func (c *config) TLS() bool { return c.TLSCert != "" }

func countSet(vals ...string) int {
	n := 0
	for _, v := range vals {
		if v != "" {
			n++
		}
	}
	return n
}

// checkExposure refuses to listen where other hosts can connect without
// TLS and a gossip key: raft RPCs and gossip would be readable and forgeable
// by anyone on the network. --insecure overrides it, for private networks
// such as test namespaces.
func (c *config) checkExposure() error {
	if c.Insecure || (c.TLS() && len(c.GossipKeys) > 0) {
		return nil
	}
	var exposed []string
	for _, a := range []struct{ flag, addr string }{{"--http-addr", c.HTTPAddr}, {"--raft-addr", c.RaftAddr}, {"--gossip-addr", c.GossipAddr}} {
		if host, _, err := net.SplitHostPort(a.addr); err == nil && !isLoopback(host) {
			exposed = append(exposed, fmt.Sprintf("%s %s", a.flag, a.addr))
		}
	}
	if len(exposed) == 0 {
		return nil
	}
	var missing []string
	if !c.TLS() {
		missing = append(missing, "--tls-ca, --tls-cert and --tls-key")
	}
	if len(c.GossipKeys) == 0 {
		missing = append(missing, "--gossip-key")
	}
	return fmt.Errorf("%s can be reached from other hosts without %s, so anyone there could read and forge cluster traffic: "+
		"set them (\"sessiond certs init\" writes a CA, node certificates, a gossip key and tokens for --token-file), "+
		"listen on 127.0.0.1, or pass --insecure on a network you trust", strings.Join(exposed, ", "), strings.Join(missing, " and "))
}

// byteSize is a flag value of bytes with an optional KiB, MiB or GiB
// suffix.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return fmt.Errorf("want a size such as 1048576, 512MiB or 2GiB")
	}
	*b = byteSize(n * mult)
	return nil
}

// hostOf is the host of a host:port address, or "" if it is not one.
func hostOf(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	return host
}

// isLoopback reports whether host names only this machine: a loopback IP
// or "localhost". Any other name could resolve to a reachable interface.
func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// checkPprofAddr refuses a --pprof-addr that is not host:port, that shares
// the API's address, or that other hosts could reach without
// --pprof-allow-remote: a heap profile holds whatever was in memory,
// session contents included. Only literal loopback addresses and
// "localhost" count as loopback; any other name could resolve to an
// interface other hosts reach.
func (c *config) checkPprofAddr() error {
	host, port, err := net.SplitHostPort(c.PprofAddr)
	if err != nil || port == "" {
		return fmt.Errorf("--pprof-addr %q must be host:port", c.PprofAddr)
	}
	if c.PprofAddr == c.HTTPAddr {
		return fmt.Errorf("--pprof-addr must not be the API's --http-addr")
	}
	if !isLoopback(host) && !c.PprofAllowRemote {
		return fmt.Errorf("--pprof-addr %q is not a loopback address; profiles expose memory contents, so add --pprof-allow-remote to serve them there", c.PprofAddr)
	}
	return nil
}

// advertise is the address other nodes use for the listener named by flag:
// its port, on --advertise-addr's host when given, else the listen host.
func (c *config) advertise(flag string) (string, error) {
	listen := map[string]string{"--raft-addr": c.RaftAddr, "--http-addr": c.HTTPAddr, "--gossip-addr": c.GossipAddr}[flag]
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", nil // reported by validate
	}
	if c.AdvertiseAddr != "" {
		host = c.AdvertiseAddr
		if h, _, err := net.SplitHostPort(c.AdvertiseAddr); err == nil {
			host = h
		}
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "", fmt.Errorf("%s binds every interface: set --advertise-addr to the address other nodes reach this one at", flag)
	}
	return net.JoinHostPort(host, port), nil
}
