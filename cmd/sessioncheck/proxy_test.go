package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/check"
)

// echoServer echoes lines over TCP on addr, as a node's real port, and
// with udp datagrams too.
func echoServer(t *testing.T, addr string, udp bool) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	if !udp {
		return
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
}

// roundTrip reports whether a line sent on c comes back within d.
func roundTrip(c net.Conn, d time.Duration) bool {
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "ping\n"
}

func dialOK(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestProxyPartitionCutsTrafficBothWays runs the proxies of two endpoints,
// a and b, over real loopback sockets. This test process plays node b:
// every TCP socket it dials from is b's, which the proxies find through
// /proc as they do for a sessiond process, and a UDP socket bound to b's
// real gossip address is b's gossip socket.
func TestProxyPartitionCutsTrafficBothWays(t *testing.T) {
	if !proxyAvailable() {
		t.Skip("no /proc: the proxy method needs Linux")
	}
	const a, b = 0, 1
	pids := map[int]int{b: os.Getpid()}
	p := newProxyNet(slog.New(slog.NewTextHandler(io.Discard, nil)), "127.0.0.2", func(i int) int { return pids[i] })
	t.Cleanup(func() { p.close() })
	var real, proxied [2][3]string
	for i := range 2 {
		var err error
		if real[i], proxied[i], err = p.addNode(i, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		echoServer(t, real[i][portRaft], false)
		echoServer(t, real[i][portGossip], i == a) // b's UDP socket is bGossip
	}
	// b's gossip socket: its datagrams carry b's real gossip address.
	bGossip, err := net.ListenPacket("udp", real[b][portGossip])
	if err != nil {
		t.Fatal(err)
	}
	defer bGossip.Close()
	udpToA := func() bool {
		to, _ := net.ResolveUDPAddr("udp", proxied[a][portGossip])
		buf := make([]byte, 64)
		for range 3 { // datagrams may be lost; a few tries
			_, _ = bGossip.WriteTo([]byte("ping"), to)
			_ = bGossip.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if n, _, err := bGossip.ReadFrom(buf); err == nil && string(buf[:n]) == "ping" {
				return true
			}
		}
		return false
	}

	bToA := dialOK(t, proxied[a][portRaft]) // b's connection to a's raft port
	toB := dialOK(t, proxied[b][portRaft])  // a connection to b
	gossipBToA := dialOK(t, proxied[a][portGossip])
	for name, c := range map[string]net.Conn{"b→a raft": bToA, "→b raft": toB, "b→a gossip": gossipBToA} {
		if !roundTrip(c, 2*time.Second) {
			t.Fatalf("%s: no echo before any cut", name)
		}
	}
	if !udpToA() {
		t.Fatal("b→a gossip datagram: no echo before any cut")
	}

	// Raft only: b's raft connections, both ways, are closed; gossip goes on.
	if err := p.isolate(b, true); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]net.Conn{"b→a raft": bToA, "→b raft": toB} {
		if roundTrip(c, time.Second) {
			t.Errorf("raft-partition of b: %s still carries traffic", name)
		}
	}
	if !roundTrip(gossipBToA, 2*time.Second) || !udpToA() {
		t.Error("raft-partition of b: its gossip was cut too")
	}
	held := dialOK(t, proxied[a][portRaft]) // accepted, then held
	if roundTrip(held, 500*time.Millisecond) {
		t.Error("raft-partition of b: a new raft connection from b was forwarded")
	}
	if err := p.heal(b); err != nil {
		t.Fatal(err)
	}
	if _, err := held.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		_ = held.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := held.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("heal: the held connection is still open (%v)", err)
		}
	}
	if !roundTrip(dialOK(t, proxied[a][portRaft]), 2*time.Second) {
		t.Error("after the heal a new raft connection from b gets no echo")
	}

	// Every port: gossip over TCP and UDP is cut as well, in both directions.
	gossipBToA = dialOK(t, proxied[a][portGossip])
	if !roundTrip(gossipBToA, 2*time.Second) {
		t.Fatal("gossip connection: no echo")
	}
	if err := p.isolate(b, false); err != nil {
		t.Fatal(err)
	}
	if roundTrip(gossipBToA, time.Second) {
		t.Error("partition of b: its gossip connection to a still carries traffic")
	}
	if udpToA() {
		t.Error("partition of b: its datagrams still reach a")
	}
	if roundTrip(dialOK(t, proxied[b][portGossip]), 500*time.Millisecond) {
		t.Error("partition of b: a new connection to b was forwarded")
	}
	if err := p.heal(b); err != nil {
		t.Fatal(err)
	}
	if !udpToA() || !roundTrip(dialOK(t, proxied[a][portGossip]), 2*time.Second) {
		t.Error("after the heal b's gossip does not reach a")
	}
}

// TestLocalClusterPartitionThroughProxies starts a real three-node cluster
// with the proxies, cuts one node off and checks that the two others lead
// every shard without it, then heals it.
func TestLocalClusterPartitionThroughProxies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a sessiond cluster")
	}
	if !proxyAvailable() {
		t.Skip("no /proc: the proxy method needs Linux")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sessiond")
	if out, err := exec.Command("go", "build", "-o", bin, "../sessiond").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	o, err := parseFlags([]string{"--target", "local", "--netns", "off", "--binary", bin, "--data-dir", dir}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	lt, err := startLocal(ctx, o, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer lt.close(true)
	if lt.partitions != "proxy" || lt.describe() != "local (partitions: proxy)" {
		t.Fatalf("partitions %q, want proxy", lt.partitions)
	}
	nodes := lt.Nodes()
	waitFor(t, ctx, "a healthy cluster", func() error { return healthyAll(nodes, "") })

	cut := nodes[0].Name
	if err := lt.Isolate(ctx, cut, false); err != nil {
		t.Fatal(err)
	}
	// The cut node's raft connections are gone, the others lead every shard.
	lt.proxy.mu.Lock()
	for c := range lt.proxy.conns {
		if c.kind == portRaft && c.dst == 0 && c.heldBy < 0 {
			t.Errorf("a raft connection to the cut node is still forwarded")
		}
	}
	lt.proxy.mu.Unlock()
	waitFor(t, ctx, "the two others to lead every shard without "+cut, func() error { return healthyAll(nodes[1:], cut) })
	if err := lt.Heal(ctx, cut, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "a healthy cluster after the heal", func() error { return healthyAll(nodes, "") })
}

func waitFor(t *testing.T, ctx context.Context, what string, f func() error) {
	t.Helper()
	var err error
	for ctx.Err() == nil {
		if err = f(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: %v", what, err)
}

// healthyAll checks that each of nodes is ready and sees a leader, not
// excluded, for every shard.
func healthyAll(nodes []check.Node, excluded string) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, n := range nodes {
		resp, err := hc.Get(n.URL + "/v1/cluster")
		if err != nil {
			return err
		}
		var c struct {
			ShardCount int `json:"shardCount"`
			Summary    struct {
				LeadersPerNode map[string]int `json:"leadersPerNode"`
			} `json:"summary"`
		}
		err = json.NewDecoder(resp.Body).Decode(&c)
		resp.Body.Close()
		if err != nil {
			return err
		}
		led := 0
		for leader, count := range c.Summary.LeadersPerNode {
			if leader == excluded {
				return errors.New(n.Name + " still sees " + excluded + " leading")
			}
			if leader != "" {
				led += count
			}
		}
		if c.ShardCount == 0 || led < c.ShardCount {
			return errors.New(n.Name + ": not every shard has a leader")
		}
	}
	return nil
}
