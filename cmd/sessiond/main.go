// Command sessiond runs a sessiond node: the chat-session HTTP API over
// Raft-replicated shards.
//
//	sessiond [flags]             run a node (see -h for flags)
//	sessiond healthcheck [flags] exit 0 if the node at --addr is ready
//	sessiond certs init [flags]  write a throwaway CA, certificates and secrets
//	sessiond version             print the build version
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/alarms"
	apiclient "github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/httpapi"
	buildversion "github.com/sessiond/sessiond/internal/version"
	"github.com/sessiond/sessiond/metrics"
)

// version is stamped at build time with -ldflags "-X main.version=…";
// unstamped builds report their module version and VCS revision.
var version = "dev"

func main() {
	args := os.Args[1:]
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Println("sessiond", buildversion.String(version))
			return
		case "healthcheck":
			os.Exit(healthcheck(args[1:]))
		case "certs":
			os.Exit(certsCommand(args[1:]))
		}
	}
	cfg, err := parseConfig(args)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessiond:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "sessiond:", err)
		os.Exit(1)
	}
}

func newLogger(cfg *config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(h).With("node", cfg.NodeID)
}

func run(cfg *config) error {
	logger := newLogger(cfg)
	slog.SetDefault(logger)
	raftAdv, _ := cfg.advertise("--raft-addr")
	httpAdv, _ := cfg.advertise("--http-addr")
	gossipAdv, _ := cfg.advertise("--gossip-addr")

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	raftLn, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("raft listener: %w", err)
	}
	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		raftLn.Close()
		return fmt.Errorf("http listener: %w", err)
	}
	if cfg.PprofAddr != "" {
		pprofLn, err := net.Listen("tcp", cfg.PprofAddr)
		if err != nil {
			httpLn.Close()
			raftLn.Close()
			return fmt.Errorf("pprof listener: %w", err)
		}
		pprofSrv := servePprof(pprofLn, logger)
		defer pprofSrv.Close() // profiles in progress are cut short at exit
		logger.Info("serving pprof", "addr", pprofLn.Addr().String(), "remote_allowed", cfg.PprofAllowRemote)
	}

	creds, err := loadCredentials(cfg)
	if err != nil {
		httpLn.Close()
		raftLn.Close()
		return err
	}

	// Before the shards start, so that raft's and memberlist's metrics are
	// bridged from their first report.
	reg := metrics.New()
	node, err := cluster.Start(cluster.Config{
		NodeID: cfg.NodeID, DataDir: cfg.DataDir,
		RaftListener: raftLn, RaftAdvertise: raftAdv, HTTPAdvertise: httpAdv,
		GossipBind: cfg.GossipAddr, GossipAdvertise: gossipAdv, Join: cfg.Join,
		BootstrapExpect: cfg.BootstrapExpect, ShardCount: cfg.Shards, Replicas: cfg.Replicas,
		MaxMoves: cfg.MaxMoves, DeadNodeGrace: cfg.DeadNodeGrace, SessionTTL: cfg.SessionTTL,
		ShardTuning: cluster.ShardTuning{Heartbeat: cfg.RaftHeartbeat, NoReadLease: !cfg.ReadLease,
			SnapshotThreshold: cfg.SnapshotThreshold, SnapshotInterval: cfg.SnapshotInterval, LogStore: cfg.LogStore},
		RaftTLS: creds.raftTLS(), PeerTLS: creds.peerTLS(), PeerToken: creds.peerToken(),
		GossipKeys: cfg.GossipKeys, MaxDataBytes: cfg.MaxDataBytes,
		Logger: logger,
	})
	if err != nil {
		httpLn.Close()
		raftLn.Close()
		return err
	}

	apiCfg := httpapi.DefaultConfig()
	apiCfg.Logger = logger
	apiCfg.Version = buildversion.String(version)
	apiCfg.Cluster = node
	apiCfg.Replicas = node
	apiCfg.MaxInFlightPerShard = cfg.MaxInFlightPerShard
	apiCfg.MaxInFlight = cfg.MaxInFlight
	apiCfg.SessionWriteRate, apiCfg.SessionWriteBurst = cfg.SessionWriteRate, cfg.SessionWriteBurst
	apiCfg.MaxStreams = cfg.MaxStreams
	apiCfg.SessionTTL = cfg.SessionTTL
	if a := creds.authenticator(); a != nil {
		apiCfg.Auth = a
	}
	apiCfg.PeerTLS = creds.peerTLS()
	apiCfg.ScratchDir = cfg.DataDir
	apiCfg.Metrics, apiCfg.MetricsHandler = reg, reg.Handler()
	drainRequested := make(chan struct{}, 1)
	apiCfg.OnDrain = func() {
		select {
		case drainRequested <- struct{}{}:
		default:
		}
	}
	api := httpapi.New(node, apiCfg)
	reg.RegisterSource(nodeSource{node: node, api: api})
	srv := newHTTPServer(api, cfg.H2C, logger)
	serveErr := make(chan error, 1)
	tlsConf := creds.clientTLS()
	clientLn := newConnLimitListener(httpLn, cfg.MaxConns, cfg.MaxConnsPerIP, tlsConf == nil, logger)
	if tlsConf != nil {
		srv.TLSConfig = tlsConf
		go func() { serveErr <- srv.ServeTLS(clientLn, "", "") }()
	} else {
		go func() { serveErr <- srv.Serve(jsonErrorListener{clientLn}) }()
	}
	logger.Info("sessiond started", "version", apiCfg.Version, "http", httpLn.Addr().String(),
		"raft", raftLn.Addr().String(), "raft_advertise", raftAdv, "gossip", cfg.GossipAddr,
		"data_dir", cfg.DataDir, "shards", cfg.Shards, "bootstrap_expect", cfg.BootstrapExpect,
		"max_inflight_per_shard", cfg.MaxInFlightPerShard, "max_inflight", cfg.MaxInFlight, "h2c", cfg.H2C,
		"max_data_bytes", cfg.MaxDataBytes, "tls", cfg.TLS(), "gossip_encrypted", len(cfg.GossipKeys) > 0, "tokens", cfg.TokenFile != "")
	if cfg.Insecure && !(cfg.TLS() && len(cfg.GossipKeys) > 0) {
		logger.Warn("running with --insecure: cluster traffic is neither encrypted nor authenticated")
	}
	if cfg.TokenFile == "" && !isLoopback(hostOf(cfg.HTTPAddr)) {
		logger.Warn("no --token-file: anyone who reaches the HTTP port may read, write and drain", "http", cfg.HTTPAddr)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go reloadOnSIGHUP(ctx, creds, logger)
	go alarms.New(alarms.Config{
		Replicas: func() []alarms.Replica {
			var out []alarms.Replica
			for _, r := range node.LocalReplicas() {
				out = append(out, r)
			}
			return out
		},
		Webhook: cfg.AlarmWebhook, Logger: logger,
	}).Run(ctx)

	drain := true
	select {
	case <-ctx.Done():
		logger.Info("signal received: draining, then shutting down")
	case <-drainRequested:
		logger.Info("drain requested: draining, then shutting down")
	case err = <-serveErr:
		logger.Error("http server stopped", "err", err)
		drain = false
	case err = <-node.Fatal():
		drain = false
	}
	// Change streams end first, with a resume event, so their clients
	// reconnect to nodes that stay.
	api.CloseStreams()
	if drain {
		// A second signal cuts the drain short.
		dctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		dctx, cancelTimeout := context.WithTimeout(dctx, cfg.DrainTimeout)
		_ = node.Drain(dctx)
		cancelTimeout()
		cancel()
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil {
		logger.Warn("http shutdown", "err", serr)
	}
	if cerr := node.Close(); cerr != nil {
		logger.Warn("closing shards", "err", cerr)
	}
	logger.Info("stopped")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// healthcheck is the container health probe: exit 0 when /readyz is 200.
// Over TLS it does not verify the node's certificate: it sends nothing
// secret and learns only a status code, and a probe inside a container
// often reaches the node by an address its certificate does not name.
func healthcheck(args []string) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	def := os.Getenv("SESSIOND_HTTP_ADDR")
	if def == "" {
		def = "127.0.0.1:8080"
	}
	addr := fs.String("addr", def, "HTTP address of the node")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for an answer")
	useTLS := fs.Bool("tls", os.Getenv("SESSIOND_TLS_CERT") != "", "speak HTTPS (default: whether SESSIOND_TLS_CERT is set, as for the node)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck: --addr must be host:port")
		return 2
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme, conf := "http", apiclient.Config{Timeout: *timeout, MaxAttempts: 1}
	if *useTLS {
		scheme, conf.TLS = "https", &tls.Config{InsecureSkipVerify: true} // see above
	}
	conf.Endpoints = []string{scheme + "://" + net.JoinHostPort(host, port)}
	c, err := apiclient.New(conf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 2
	}
	ready, err := c.Ready(context.Background())
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	case !ready:
		fmt.Fprintln(os.Stderr, "healthcheck: /readyz answered 503: not every local shard has a leader yet")
		return 1
	}
	return 0
}
