package main

// The local target: sessiond processes the checker starts and owns, each
// with a fresh data directory. With --netns each node runs in a network
// namespace of its own, so a partition is a link taken down; without it
// the nodes share loopback and a partition is cut in the proxies in front
// of their ports (proxy.go).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/internal/check"
)

type localTarget struct {
	dir    string
	ownDir bool
	net    *netnsLab // nil without namespaces
	proxy  *proxyNet // nil with namespaces
	nodes  []*localNode
	logger *slog.Logger
	// partitions is how partition faults are injected: "netns", "proxy",
	// or "none" when neither works here and they are left out.
	partitions string
}

type localNode struct {
	name, url string
	args      []string // the command line, "ip netns exec …" included
	log       string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exits
}

func startLocal(ctx context.Context, o *options, logger *slog.Logger) (*localTarget, error) {
	t := &localTarget{dir: o.dataDir, logger: logger}
	if t.dir == "" {
		d, err := os.MkdirTemp("", "sessioncheck-cluster-")
		if err != nil {
			return nil, err
		}
		t.dir, t.ownDir = d, true
	}
	bin := o.binary
	if bin == "" {
		bin = filepath.Join(t.dir, "sessiond")
		logger.Info("building sessiond", "out", bin)
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sessiond").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/sessiond (run from the repository, or pass --binary): %v: %s", err, out)
		}
	}
	bin, _ = filepath.Abs(bin)

	useNetns := o.netns == "on" || o.netns == "auto" && netnsAvailable()
	switch {
	case useNetns:
		lab, err := newNetnsLab(ctx, o.nodes)
		if err != nil {
			return nil, fmt.Errorf("network namespaces: %w (use --netns off to partition through proxies on loopback)", err)
		}
		t.net, t.partitions = lab, "netns"
	case proxyAvailable():
		// 127.0.0.0/8 is all loopback on Linux: nodes listen on .1 and
		// their proxies on .2, the same port on both.
		t.proxy, t.partitions = newProxyNet(logger, "127.0.0.2", t.pid), "proxy"
	default:
		t.partitions = "none"
		if strings.Contains(o.faults, "partition") {
			o.faults = strings.Join(without(without(splitList(o.faults), check.FaultPartition), check.FaultRaftCut), ",")
			logger.Warn("neither network namespaces nor /proc to run proxies: the partition faults are left out")
		}
	}

	// client is the HTTP address the checker uses, join the gossip address
	// peers reach the node at.
	type addrs struct{ http, raft, gossip, advertise, client, join string }
	var all []addrs
	for i := range o.nodes {
		switch {
		case t.net != nil:
			ip := t.net.ip(i)
			all = append(all, addrs{ip + ":8080", ip + ":7000", ip + ":7946", ip, ip + ":8080", ip + ":7946"})
			continue
		case t.proxy != nil:
			real, proxied, err := t.proxy.addNode(i, "127.0.0.1")
			if err != nil {
				t.proxy.close()
				return nil, err
			}
			// Peers reach the node through its proxies; the checker's
			// clients talk to it directly.
			all = append(all, addrs{real[portHTTP], real[portRaft], real[portGossip], t.proxy.proxyHost, real[portHTTP], proxied[portGossip]})
			continue
		}
		ports, err := freePorts(3)
		if err != nil {
			return nil, err
		}
		all = append(all, addrs{"127.0.0.1:" + ports[0], "127.0.0.1:" + ports[1], "127.0.0.1:" + ports[2], "", "127.0.0.1:" + ports[0], "127.0.0.1:" + ports[2]})
	}
	var join []string
	for _, a := range all {
		join = append(join, a.join)
	}
	for i, a := range all {
		name := fmt.Sprintf("node%d", i+1)
		args := []string{bin,
			"--node-id", name, "--data-dir", filepath.Join(t.dir, name),
			"--http-addr", a.http, "--raft-addr", a.raft, "--gossip-addr", a.gossip,
			"--join", strings.Join(join, ","), "--bootstrap-expect", strconv.Itoa(o.nodes),
			"--shards", "8", "--replicas", "3",
			// Frequent snapshots, so a partition of a few seconds already
			// makes the leader send InstallSnapshot to the returning node.
			"--snapshot-threshold", "256", "--snapshot-interval", "2s",
			"--drain-timeout", "30s", "--log-format", "json",
		}
		if a.advertise != "" {
			// Namespace addresses are reachable only from this machine's
			// private bridge, so the nodes may run without TLS there.
			args = append(args, "--advertise-addr", a.advertise, "--insecure")
		}
		if t.net != nil {
			args = append([]string{"ip", "netns", "exec", t.net.ns(i)}, args...)
		}
		n := &localNode{name: name, url: "http://" + a.client, args: args, log: filepath.Join(t.dir, name+".log")}
		t.nodes = append(t.nodes, n)
		if err := n.start(); err != nil {
			t.close(true)
			return nil, err
		}
	}
	logger.Info("local cluster started", "nodes", o.nodes, "dir", t.dir, "partitions", t.partitions)
	return t, nil
}

// describe names the target and how it partitions, for the report.
func (t *localTarget) describe() string {
	return "local (partitions: " + t.partitions + ")"
}

// pid is the process id of node i's running sessiond, 0 when none.
func (t *localTarget) pid(i int) int {
	if i < 0 || i >= len(t.nodes) {
		return 0
	}
	n := t.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	select {
	case <-n.done:
		return 0
	default:
		return n.cmd.Process.Pid
	}
}

func without(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

func freePorts(n int) ([]string, error) {
	var out []string
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return out, nil
}

func (n *localNode) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.done:
		default:
			return nil // still running (a drained node may not have exited yet)
		}
	}
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.args[0], n.args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	n.cmd, n.done = cmd, done
	return nil
}

func (n *localNode) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return fmt.Errorf("%s was never started", n.name)
	}
	return n.cmd.Process.Signal(sig)
}

// wait waits for the process to exit.
func (n *localNode) wait(ctx context.Context) error {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s did not exit: %w", n.name, ctx.Err())
	}
}

func (t *localTarget) node(name string) *localNode {
	for _, n := range t.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (t *localTarget) Nodes() []check.Node {
	out := make([]check.Node, len(t.nodes))
	for i, n := range t.nodes {
		out[i] = check.Node{Name: n.name, URL: n.url}
	}
	return out
}

func (t *localTarget) Kill(ctx context.Context, name string) error {
	n := t.node(name)
	if err := n.signal(syscall.SIGKILL); err != nil {
		return err
	}
	return n.wait(ctx)
}

func (t *localTarget) Start(ctx context.Context, name string) error {
	return t.node(name).start()
}

func (t *localTarget) Stop(ctx context.Context, name string) error {
	n := t.node(name)
	if err := n.signal(syscall.SIGTERM); err != nil {
		return err
	}
	return n.waitOrDump(ctx)
}

// waitOrDump waits for the process to exit after a SIGTERM or a drain. A
// process still running after stopTimeout gets SIGQUIT, so the Go runtime
// writes every goroutine's stack to its log, and then SIGKILL.
func (n *localNode) waitOrDump(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	if n.wait(wctx) == nil {
		return nil
	}
	_ = n.signal(syscall.SIGQUIT)
	kctx, kcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer kcancel()
	if n.wait(kctx) != nil {
		_ = n.signal(syscall.SIGKILL)
		_ = n.wait(kctx)
	}
	return fmt.Errorf("%s did not exit within %v; its goroutines are in %s", n.name, stopTimeout, n.log)
}

func (t *localTarget) Drain(ctx context.Context, name string) error {
	if err := check.RequestDrain(ctx, check.Credentials{}, t.Nodes(), name); err != nil {
		return err
	}
	return t.node(name).waitOrDump(ctx)
}

func (t *localTarget) Pause(ctx context.Context, name string) error {
	return t.node(name).signal(syscall.SIGSTOP)
}

func (t *localTarget) Resume(ctx context.Context, name string) error {
	return t.node(name).signal(syscall.SIGCONT)
}

func (t *localTarget) Isolate(ctx context.Context, name string, raftOnly bool) error {
	switch {
	case t.proxy != nil:
		return t.proxy.isolate(t.index(name), raftOnly)
	case t.net == nil:
		return errors.ErrUnsupported
	case raftOnly:
		return raftFilter(ctx, "-A", "ip", "netns", "exec", t.net.ns(t.index(name)))
	}
	return t.net.setLink(ctx, t.index(name), false)
}

func (t *localTarget) Heal(ctx context.Context, name string, raftOnly bool) error {
	switch {
	case t.proxy != nil:
		return t.proxy.heal(t.index(name))
	case t.net == nil:
		return errors.ErrUnsupported
	case raftOnly:
		return raftFilter(ctx, "-D", "ip", "netns", "exec", t.net.ns(t.index(name)))
	}
	return t.net.setLink(ctx, t.index(name), true)
}

func (t *localTarget) index(name string) int {
	for i, n := range t.nodes {
		if n.name == name {
			return i
		}
	}
	return -1
}

// close stops every node and removes the namespaces; with clean it also
// removes the data directories it created.
func (t *localTarget) close(clean bool) error {
	for _, n := range t.nodes {
		_ = n.signal(syscall.SIGCONT)
		_ = n.signal(syscall.SIGKILL)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = n.wait(ctx)
		cancel()
	}
	var err error
	if t.net != nil {
		err = t.net.close()
	}
	if t.proxy != nil {
		err = errors.Join(err, t.proxy.close())
	}
	if clean && t.ownDir {
		err = errors.Join(err, os.RemoveAll(t.dir))
	} else {
		t.logger.Info("cluster data and node logs kept", "dir", t.dir)
	}
	return err
}
