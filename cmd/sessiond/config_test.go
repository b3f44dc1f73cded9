package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// clearEnv removes every SESSIOND_* variable for the duration of the test,
// so the developer's or CI's environment cannot leak into the config.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "SESSIOND_") {
			t.Setenv(k, "") // restores the old value after the test
			os.Unsetenv(k)
		}
	}
}

func mustParse(t *testing.T, args ...string) *config {
	t.Helper()
	c, err := parseConfig(args)
	if err != nil {
		t.Fatalf("parseConfig(%q): %v", args, err)
	}
	return c
}

func TestConfigDefaultsRunOneLocalNode(t *testing.T) {
	clearEnv(t)
	host, _ := os.Hostname()
	c := mustParse(t)
	want := &config{NodeID: host, DataDir: "./data", HTTPAddr: "127.0.0.1:8080", RaftAddr: "127.0.0.1:7000",
		GossipAddr: "127.0.0.1:7946", BootstrapExpect: 1, Shards: 16, Replicas: 3,
		RaftHeartbeat: time.Second, ReadLease: true, SnapshotThreshold: 8192, SnapshotInterval: time.Minute, DrainTimeout: 2 * time.Minute,
		DeadNodeGrace: time.Minute, MaxMoves: 2, MaxInFlightPerShard: 256, MaxInFlight: 256, H2C: true, LogLevel: "info", LogFormat: "text",
		MaxDataBytes: 2 << 30, MaxConns: 8192, MaxConnsPerIP: 512, SessionWriteRate: 100, SessionWriteBurst: 200, MaxStreams: 10000}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults\n got %+v\nwant %+v", c, want)
	}
	for flag, want := range map[string]string{"--raft-addr": "127.0.0.1:7000", "--http-addr": "127.0.0.1:8080", "--gossip-addr": "127.0.0.1:7946"} {
		if got, err := c.advertise(flag); err != nil || got != want {
			t.Errorf("advertise(%s) = %q, %v; want %q", flag, got, err, want)
		}
	}
}

func TestConfigFlags(t *testing.T) {
	clearEnv(t)
	c := mustParse(t, "--node-id", "n7", "--data-dir=/var/lib/sessiond", "--http-addr", "10.0.0.7:80",
		"--raft-addr", "10.0.0.7:7001", "--gossip-addr", "10.0.0.7:7947", "--join", " a:1, b:2 ,,",
		"--bootstrap-expect", "3", "--shards", "1024", "--replicas", "5", "--session-ttl", "24h",
		"--raft-heartbeat", "500ms", "--read-lease=false", "--snapshot-threshold", "16", "--snapshot-interval", "2s", "--drain-timeout", "0s", "--dead-node-grace", "5m",
		"--max-moves", "4", "--max-inflight-per-shard", "64", "--max-inflight", "2048",
		"--h2c=false", "--pprof-addr", "10.0.0.7:6060", "--pprof-allow-remote", "--log-level", "debug", "-log-format", "json",
		"--token-file", "/etc/sessiond/tokens", "--tls-ca", "/etc/sessiond/ca.pem", "--tls-cert", "/etc/sessiond/n7.pem",
		"--tls-key", "/etc/sessiond/n7-key.pem", "--client-tls-cert", "/etc/sessiond/api.pem", "--client-tls-key", "/etc/sessiond/api-key.pem",
		"--gossip-key", "AAAAAAAAAAAAAAAAAAAAAA==,AQEBAQEBAQEBAQEBAQEBAQ==", "--max-data-bytes", "512MiB",
		"--max-conns", "100", "--max-conns-per-ip", "10", "--session-write-rate", "2.5", "--session-write-burst", "5", "--max-streams", "7")
	want := &config{NodeID: "n7", DataDir: "/var/lib/sessiond", HTTPAddr: "10.0.0.7:80", RaftAddr: "10.0.0.7:7001",
		GossipAddr: "10.0.0.7:7947", Join: []string{"a:1", "b:2"}, BootstrapExpect: 3, Shards: 1024, Replicas: 5,
		SessionTTL: 24 * time.Hour, RaftHeartbeat: 500 * time.Millisecond, SnapshotThreshold: 16,
		SnapshotInterval: 2 * time.Second, DeadNodeGrace: 5 * time.Minute, MaxMoves: 4,
		MaxInFlightPerShard: 64, MaxInFlight: 2048, PprofAddr: "10.0.0.7:6060", PprofAllowRemote: true,
		LogLevel: "debug", LogFormat: "json", TokenFile: "/etc/sessiond/tokens",
		TLSCA: "/etc/sessiond/ca.pem", TLSCert: "/etc/sessiond/n7.pem", TLSKey: "/etc/sessiond/n7-key.pem",
		ClientTLSCert: "/etc/sessiond/api.pem", ClientTLSKey: "/etc/sessiond/api-key.pem",
		GossipKeys: [][]byte{make([]byte, 16), bytes.Repeat([]byte{1}, 16)}, MaxDataBytes: 512 << 20, MaxConns: 100, MaxConnsPerIP: 10, SessionWriteRate: 2.5, SessionWriteBurst: 5, MaxStreams: 7}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("flags\n got %+v\nwant %+v", c, want)
	}
}

func TestConfigEnvironmentAndFlagPrecedence(t *testing.T) {
	clearEnv(t)
	t.Setenv("SESSIOND_NODE_ID", "from-env")
	t.Setenv("SESSIOND_SHARDS", "32")
	t.Setenv("SESSIOND_DATA_DIR", "/env/data")
	t.Setenv("SESSIOND_JOIN", "x:1,y:2")
	t.Setenv("SESSIOND_SESSION_TTL", "90m")
	t.Setenv("SESSIOND_LOG_FORMAT", "json")
	t.Setenv("SESSIOND_ADVERTISE_ADDR", "10.1.2.3")
	t.Setenv("SESSIOND_MAX_MOVES", "5")
	t.Setenv("SESSIOND_DEAD_NODE_GRACE", "30s")
	t.Setenv("SESSIOND_H2C", "false")

	c := mustParse(t)
	if c.NodeID != "from-env" || c.Shards != 32 || c.DataDir != "/env/data" || c.SessionTTL != 90*time.Minute ||
		c.LogFormat != "json" || !reflect.DeepEqual(c.Join, []string{"x:1", "y:2"}) || c.AdvertiseAddr != "10.1.2.3" ||
		c.MaxMoves != 5 || c.DeadNodeGrace != 30*time.Second || c.H2C {
		t.Fatalf("environment not applied: %+v", c)
	}
	// A flag on the command line wins over its variable, in both spellings.
	c = mustParse(t, "--shards", "8", "--node-id=from-flag", "-data-dir", "/flag/data", "--h2c")
	if c.Shards != 8 || c.NodeID != "from-flag" || c.DataDir != "/flag/data" || !c.H2C {
		t.Fatalf("flags did not win over the environment: %+v", c)
	}
	if c.SessionTTL != 90*time.Minute || c.LogFormat != "json" {
		t.Fatalf("variables of flags not given were dropped: %+v", c)
	}
	// A bad value in the environment names the variable.
	t.Setenv("SESSIOND_REPLICAS", "three")
	if _, err := parseConfig(nil); err == nil || !strings.Contains(err.Error(), "SESSIOND_REPLICAS") {
		t.Fatalf("bad SESSIOND_REPLICAS = %v; want an error naming the variable", err)
	}
	// ... unless the flag overrides it.
	if c := mustParse(t, "--replicas", "1"); c.Replicas != 1 {
		t.Fatalf("replicas %d", c.Replicas)
	}
	// The environment is validated like flags.
	os.Unsetenv("SESSIOND_REPLICAS")
	t.Setenv("SESSIOND_SHARDS", "0")
	if _, err := parseConfig(nil); err == nil || !strings.Contains(err.Error(), "--shards") {
		t.Fatalf("SESSIOND_SHARDS=0 = %v", err)
	}
}

func TestConfigRefusesInvalidSettings(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--shards", "0"}, "--shards must be between 1 and 1024, not 0"},
		{[]string{"--shards", "1025"}, "--shards must be between 1 and 1024, not 1025"},
		{[]string{"--replicas", "0"}, "--replicas"},
		{[]string{"--replicas", "8"}, "--replicas"},
		{[]string{"--bootstrap-expect", "0"}, "--bootstrap-expect"},
		{[]string{"--session-ttl", "-1s"}, "--session-ttl"},
		{[]string{"--raft-heartbeat", "10ms"}, "--raft-heartbeat"},
		{[]string{"--snapshot-threshold", "15"}, "--snapshot-threshold"},
		{[]string{"--drain-timeout", "-1s"}, "--drain-timeout"},
		{[]string{"--dead-node-grace", "-1m"}, "--dead-node-grace"},
		{[]string{"--max-moves", "0"}, "--max-moves"},
		{[]string{"--max-inflight-per-shard", "0"}, "--max-inflight-per-shard and --max-inflight must be at least 1"},
		{[]string{"--max-inflight", "-1"}, "--max-inflight-per-shard and --max-inflight must be at least 1"},
		{[]string{"--pprof-addr", "6060"}, `--pprof-addr "6060" must be host:port`},
		{[]string{"--pprof-addr", "127.0.0.1:"}, "--pprof-addr"},
		{[]string{"--pprof-addr", "127.0.0.1:8080"}, "--pprof-addr must not be the API's --http-addr"},
		{[]string{"--max-data-bytes", "-1"}, "max-data-bytes: want a size"},
		{[]string{"--max-data-bytes", "2TB"}, "max-data-bytes: want a size"},
		{[]string{"--max-data-bytes", "99999999999GiB"}, "max-data-bytes: want a size"},
		{[]string{"--session-write-rate", "-1"}, "--session-write-rate"},
		{[]string{"--session-write-burst", "0"}, "--session-write-burst"},
		{[]string{"--max-conns", "0"}, "--max-conns and --max-conns-per-ip must be at least 1"},
		{[]string{"--max-conns-per-ip", "0"}, "--max-conns and --max-conns-per-ip must be at least 1"},
		{[]string{"--log-level", "verbose"}, "--log-level"},
		{[]string{"--log-level", "INFO"}, "--log-level"},
		{[]string{"--log-format", "yaml"}, "--log-format"},
		{[]string{"--node-id", ""}, "--node-id"},
		{[]string{"--node-id", strings.Repeat("n", 65)}, "--node-id must be at most 64 bytes"},
		{[]string{"--data-dir", ""}, "--data-dir"},
		{[]string{"--http-addr", "localhost"}, `--http-addr "localhost" must be host:port`},
		{[]string{"--http-addr", "127.0.0.1:"}, "--http-addr"},
		{[]string{"--raft-addr", "7000"}, "--raft-addr"},
		{[]string{"--gossip-addr", "[::1"}, "--gossip-addr"},
		{[]string{"--join", "a:1,nohost"}, `--join address "nohost"`},
		{[]string{"--raft-addr", "0.0.0.0:7000"}, "--raft-addr binds every interface: set --advertise-addr"},
		{[]string{"--http-addr", ":8080"}, "--http-addr binds every interface"},
		{[]string{"--gossip-addr", "[::]:7946"}, "--gossip-addr binds every interface"},
		{[]string{"--shards"}, "flag needs an argument"},
		{[]string{"--shards", "many"}, "invalid value"},
		{[]string{"--no-such-flag"}, "not defined"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			clearEnv(t)
			_, err := parseConfig(c.args)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("parseConfig(%q) = %v; want an error containing %q", c.args, err, c.want)
			}
		})
	}
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	clearEnv(t)
	_, err := parseConfig([]string{"--shards", "0", "--log-level", "loud", "--raft-addr", "nope"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"--shards", "--log-level", "--raft-addr"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestConfigAdvertiseAddr(t *testing.T) {
	clearEnv(t)
	for _, adv := range []string{"10.0.0.5", "10.0.0.5:9999", "node1.internal"} {
		c := mustParse(t, "--raft-addr", "0.0.0.0:7000", "--http-addr", "0.0.0.0:8080", "--gossip-addr", "0.0.0.0:7946",
			"--advertise-addr", adv, "--insecure")
		host, _, _ := strings.Cut(adv, ":")
		for flag, port := range map[string]string{"--raft-addr": "7000", "--http-addr": "8080", "--gossip-addr": "7946"} {
			if got, err := c.advertise(flag); err != nil || got != host+":"+port {
				t.Errorf("--advertise-addr %s: advertise(%s) = %q, %v; want %s:%s", adv, flag, got, err, host, port)
			}
		}
	}
	if _, err := parseConfig([]string{"--raft-addr", "0.0.0.0:7000", "--advertise-addr", "0.0.0.0", "--insecure"}); err == nil {
		t.Fatal("an unspecified --advertise-addr was accepted")
	}
}

// A node that other hosts can reach refuses to start without TLS and a
// gossip key, naming what to set, unless --insecure says the network is
// trusted; loopback addresses need neither.
func TestConfigRefusesReachableAddressesWithoutTLSAndGossipKey(t *testing.T) {
	clearEnv(t)
	tls := []string{"--tls-ca", "ca.pem", "--tls-cert", "n1.pem", "--tls-key", "n1-key.pem"}
	key := []string{"--gossip-key", "AAAAAAAAAAAAAAAAAAAAAA=="}
	for _, addr := range []string{"--http-addr=0.0.0.0:8080", "--raft-addr=10.0.0.5:7000", "--gossip-addr=node1.internal:7946"} {
		for _, extra := range [][]string{nil, tls, key} {
			_, err := parseConfig(append([]string{addr, "--advertise-addr", "10.0.0.5"}, extra...))
			if err == nil || !strings.Contains(err.Error(), "can be reached from other hosts") || !strings.Contains(err.Error(), "--insecure") {
				t.Errorf("%s %v: %v, want a refusal naming what to set", addr, extra, err)
			}
		}
		mustParse(t, append(append([]string{addr, "--advertise-addr", "10.0.0.5"}, tls...), key...)...)
		mustParse(t, addr, "--advertise-addr", "10.0.0.5", "--insecure")
	}
	mustParse(t, "--http-addr", "127.0.0.1:8080", "--raft-addr", "[::1]:7000", "--gossip-addr", "localhost:7946")
	keyFile := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(keyFile, []byte("AAAAAAAAAAAAAAAAAAAAAA==\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c := mustParse(t, "--gossip-key-file", keyFile); len(c.GossipKeys) != 1 || len(c.GossipKeys[0]) != 16 {
		t.Fatalf("--gossip-key-file: %v", c.GossipKeys)
	}
	if _, err := parseConfig([]string{"--gossip-key-file", keyFile, "--gossip-key", "AAAAAAAAAAAAAAAAAAAAAA=="}); err == nil {
		t.Error("--gossip-key with --gossip-key-file was accepted")
	}
	for _, bad := range [][]string{
		{"--tls-ca", "ca.pem"},
		{"--tls-cert", "n1.pem", "--tls-key", "n1-key.pem"},
		append([]string{"--client-tls-cert", "c.pem"}, tls...),
		{"--client-tls-cert", "c.pem", "--client-tls-key", "c-key.pem"},
		{"--gossip-key", "c2hvcnQ="},
	} {
		if _, err := parseConfig(bad); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
}

// TestConfigAcceptsClusterFlags: cluster formation is implemented (cluster.Start
// with memberlist), so --join and --bootstrap-expect above 1 are accepted.
func TestConfigAcceptsClusterFlags(t *testing.T) {
	clearEnv(t)
	c := mustParse(t, "--bootstrap-expect", "3", "--join", "10.0.0.1:7946,10.0.0.2:7946")
	if c.BootstrapExpect != 3 || len(c.Join) != 2 {
		t.Fatalf("cluster flags: %+v", c)
	}
}

func TestConfigHelpIsNotAnError(t *testing.T) {
	clearEnv(t)
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	stderr := os.Stderr
	os.Stderr = devnull // the flag package prints usage there
	_, err := parseConfig([]string{"-h"})
	os.Stderr = stderr
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h = %v, want flag.ErrHelp", err)
	}
}

// TestConfigPprofIsLoopbackOnlyUnlessAllowed: pprof is off by default, any
// loopback address is accepted, and an address other hosts could reach —
// every interface, a LAN address, a host name — needs --pprof-allow-remote,
// because profiles expose memory contents.
func TestConfigPprofIsLoopbackOnlyUnlessAllowed(t *testing.T) {
	clearEnv(t)
	if c := mustParse(t); c.PprofAddr != "" || c.PprofAllowRemote {
		t.Fatalf("pprof on by default: %+v", c)
	}
	for _, addr := range []string{"127.0.0.1:6060", "127.0.0.2:6060", "[::1]:6060", "localhost:6060", "127.0.0.1:0"} {
		if c := mustParse(t, "--pprof-addr", addr); c.PprofAddr != addr {
			t.Errorf("--pprof-addr %s: got %q", addr, c.PprofAddr)
		}
	}
	for _, addr := range []string{":6060", "0.0.0.0:6060", "[::]:6060", "10.0.0.7:6060", "node1.internal:6060", "localhost.example.com:6060"} {
		_, err := parseConfig([]string{"--pprof-addr", addr})
		if err == nil || !strings.Contains(err.Error(), "--pprof-allow-remote") {
			t.Errorf("--pprof-addr %s = %v; want a refusal naming --pprof-allow-remote", addr, err)
		}
		if c := mustParse(t, "--pprof-addr", addr, "--pprof-allow-remote"); c.PprofAddr != addr || !c.PprofAllowRemote {
			t.Errorf("--pprof-addr %s --pprof-allow-remote: %+v", addr, c)
		}
	}
	// The opt-in comes from the environment like every flag.
	t.Setenv("SESSIOND_PPROF_ADDR", "0.0.0.0:6060")
	if _, err := parseConfig(nil); err == nil {
		t.Fatal("SESSIOND_PPROF_ADDR=0.0.0.0:6060 accepted without the opt-in")
	}
	t.Setenv("SESSIOND_PPROF_ALLOW_REMOTE", "true")
	if c := mustParse(t); c.PprofAddr != "0.0.0.0:6060" || !c.PprofAllowRemote {
		t.Fatalf("environment: %+v", c)
	}
}
