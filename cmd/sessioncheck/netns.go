package main

// A small network of namespaces for the local target. The nodes' links
// meet on a bridge inside a namespace of its own, so the host's firewall
// (Docker sets the FORWARD policy to DROP) never sees node-to-node
// traffic; one more link connects the checker, in the host namespace.
//
//	host ── chk ─┐
//	node1 ─ p1 ──┼── bridge0 (in namespace sw)
//	node2 ─ p2 ──┘
//
// A partition takes a node's port on the bridge down: raft, gossip and its
// HTTP API are all cut, as for a pulled cable.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

type netnsLab struct {
	prefix string // unique per run: names are prefix+"sw", prefix+"n1", …
	subnet string // "10.231.X"
	nodes  int
}

func netnsAvailable() bool {
	if os.Geteuid() != 0 {
		return false
	}
	_, err := exec.LookPath("ip")
	return err == nil
}

func newNetnsLab(ctx context.Context, nodes int) (*netnsLab, error) {
	pid := os.Getpid()
	l := &netnsLab{prefix: fmt.Sprintf("sck%d", pid%100000), subnet: fmt.Sprintf("10.231.%d", pid%250), nodes: nodes}
	sw := l.prefix + "sw"
	steps := [][]string{
		{"netns", "add", sw},
		{"-n", sw, "link", "set", "lo", "up"},
		{"-n", sw, "link", "add", "bridge0", "type", "bridge"},
		{"-n", sw, "link", "set", "bridge0", "up"},
		// The checker's link: host side gets .1.
		{"link", "add", l.prefix + "h", "type", "veth", "peer", "name", "host0", "netns", sw},
		{"addr", "add", l.subnet + ".1/24", "dev", l.prefix + "h"},
		{"link", "set", l.prefix + "h", "up"},
		{"-n", sw, "link", "set", "host0", "master", "bridge0"},
		{"-n", sw, "link", "set", "host0", "up"},
	}
	for i := range nodes {
		ns, port := l.ns(i), fmt.Sprintf("p%d", i+1)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", ns, "addr", "add", l.ip(i) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", sw, "link", "set", port, "master", "bridge0"},
			[]string{"-n", sw, "link", "set", port, "up"},
		)
	}
	for _, s := range steps {
		if err := ipCmd(ctx, s...); err != nil {
			return nil, errors.Join(err, l.close())
		}
	}
	return l, nil
}

func (l *netnsLab) ns(i int) string { return fmt.Sprintf("%sn%d", l.prefix, i+1) }
func (l *netnsLab) ip(i int) string { return fmt.Sprintf("%s.%d", l.subnet, 11+i) }

// setLink takes node i's port on the bridge down or up.
func (l *netnsLab) setLink(ctx context.Context, i int, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ipCmd(ctx, "-n", l.prefix+"sw", "link", "set", fmt.Sprintf("p%d", i+1), state)
}

// close removes the namespaces; their links go with them.
func (l *netnsLab) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	_ = ipCmd(ctx, "link", "del", l.prefix+"h")
	for i := range l.nodes {
		if err := ipCmd(ctx, "netns", "del", l.ns(i)); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err)
		}
	}
	if err := ipCmd(ctx, "netns", "del", l.prefix+"sw"); err != nil && !strings.Contains(err.Error(), "No such file") {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func ipCmd(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// raftPort is the port sessiond's raft mux listens on in every node's
// namespace and container.
const raftPort = "7000"

// raftFilter adds (-A) or deletes (-D) the iptables rules that drop a
// node's raft traffic in both directions, gossip and HTTP untouched. enter
// is the command that runs iptables inside the node's network namespace.
func raftFilter(ctx context.Context, op string, enter ...string) error {
	for _, rule := range [][]string{
		{"INPUT", "-p", "tcp", "--dport", raftPort, "-j", "DROP"},
		{"OUTPUT", "-p", "tcp", "--dport", raftPort, "-j", "DROP"},
	} {
		args := append(append(append([]string(nil), enter...), "iptables", op), rule...)
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
