package main

// The compose target: the containers of a docker compose project, hurt
// from the host with docker kill/start/stop/pause and network disconnect.

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/sessiond/sessiond/internal/check"
)

type composeOptions struct {
	project, file, services string
}

type composeTarget struct {
	compose []string // "docker compose" or "docker-compose", with -p and -f
	network string   // the project's network
	nodes   []check.Node
	ids     map[string]string // service → container id
}

func newComposeTarget(ctx context.Context, o composeOptions) (*composeTarget, error) {
	t := &composeTarget{ids: map[string]string{}}
	if _, err := command(ctx, 10*time.Second, "docker", "compose", "version"); err == nil {
		t.compose = []string{"docker", "compose"}
	} else {
		t.compose = []string{"docker-compose"}
	}
	t.compose = append(t.compose, "-p", o.project, "-f", o.file)
	t.network = o.project + "_sessiond"
	for _, svc := range splitList(o.services) {
		id, err := command(ctx, 30*time.Second, append(t.compose, "ps", "-q", svc)...)
		if err != nil || id == "" {
			return nil, fmt.Errorf("compose service %s of project %s is not running (start it with scripts/compose.sh up): %v", svc, o.project, err)
		}
		port, err := command(ctx, 10*time.Second, "docker", "port", id, "8080/tcp")
		if err != nil {
			return nil, fmt.Errorf("%s publishes no port for 8080: %v", svc, err)
		}
		port = strings.Fields(port)[0] // "0.0.0.0:18081", perhaps followed by the IPv6 line
		port = port[strings.LastIndex(port, ":")+1:]
		t.ids[svc] = id
		t.nodes = append(t.nodes, check.Node{Name: svc, URL: "http://127.0.0.1:" + port})
	}
	return t, nil
}

// command runs a command and returns its trimmed output.
func command(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return "", fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

func (t *composeTarget) docker(ctx context.Context, args ...string) error {
	_, err := command(ctx, 3*time.Minute, append([]string{"docker"}, args...)...)
	return err
}

func (t *composeTarget) Nodes() []check.Node { return t.nodes }

func (t *composeTarget) Kill(ctx context.Context, n string) error {
	return t.docker(ctx, "kill", "-s", "KILL", t.ids[n])
}

// Start starts the container; it may already run again, as the compose
// file's restart policy restarts a node that exits after a drain.
func (t *composeTarget) Start(ctx context.Context, n string) error {
	return t.docker(ctx, "start", t.ids[n])
}

// Stop sends SIGTERM (sessiond drains, then exits) and waits for the
// container to stop.
func (t *composeTarget) Stop(ctx context.Context, n string) error {
	before, err := t.started(ctx, n)
	if err != nil {
		return err
	}
	if err := t.docker(ctx, "kill", "-s", "TERM", t.ids[n]); err != nil {
		return err
	}
	return t.awaitExit(ctx, n, before)
}

// awaitExit waits until the container's process that started at before has
// exited. The restart policy may start it again at once, so a new StartedAt
// counts as much as a stopped container. A process still running after
// stopTimeout gets SIGQUIT, so the Go runtime writes every goroutine's stack
// to the container log, and then SIGKILL.
func (t *composeTarget) awaitExit(ctx context.Context, n, before string) error {
	deadline := time.Now().Add(stopTimeout)
	for time.Now().Before(deadline) {
		now, err := t.started(ctx, n)
		if err != nil {
			return err
		}
		if now != before {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	_ = t.docker(ctx, "kill", "-s", "QUIT", t.ids[n])
	time.Sleep(2 * time.Second)
	_ = t.docker(ctx, "kill", "-s", "KILL", t.ids[n])
	return fmt.Errorf("%s did not exit within %v; its goroutines are in its container log", n, stopTimeout)
}

// Drain asks for the drain, then waits for the container's process to
// exit.
func (t *composeTarget) Drain(ctx context.Context, n string) error {
	before, err := t.started(ctx, n)
	if err != nil {
		return err
	}
	if err := check.RequestDrain(ctx, t.nodes, n); err != nil {
		return err
	}
	return t.awaitExit(ctx, n, before)
}

// started says when the container's process started, or "stopped".
func (t *composeTarget) started(ctx context.Context, n string) (string, error) {
	out, err := command(ctx, 10*time.Second, "docker", "inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", t.ids[n])
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(out, "false") {
		return "stopped", nil
	}
	return out, nil
}

func (t *composeTarget) Pause(ctx context.Context, n string) error {
	return t.docker(ctx, "pause", t.ids[n])
}

func (t *composeTarget) Resume(ctx context.Context, n string) error {
	return t.docker(ctx, "unpause", t.ids[n])
}

// Isolate disconnects the node from the project network: raft, gossip and
// its published HTTP port are all cut. With raftOnly it drops the raft port
// with iptables inside the container's network namespace instead (the
// image has no tools; the host's iptables runs there through nsenter).
func (t *composeTarget) Isolate(ctx context.Context, n string, raftOnly bool) error {
	if raftOnly {
		return t.raftFilter(ctx, n, "-A")
	}
	return t.docker(ctx, "network", "disconnect", "-f", t.network, t.ids[n])
}

// Heal reconnects it under its service name, which the other nodes use.
func (t *composeTarget) Heal(ctx context.Context, n string, raftOnly bool) error {
	if raftOnly {
		return t.raftFilter(ctx, n, "-D")
	}
	return t.docker(ctx, "network", "connect", "--alias", n, t.network, t.ids[n])
}

func (t *composeTarget) raftFilter(ctx context.Context, n, op string) error {
	pid, err := command(ctx, 10*time.Second, "docker", "inspect", "-f", "{{.State.Pid}}", t.ids[n])
	if err != nil {
		return err
	}
	if pid == "0" {
		return fmt.Errorf("%s is not running", n)
	}
	return raftFilter(ctx, op, "nsenter", "-t", pid, "-n")
}

// close undoes what a fault may have left behind if the run was cut short.
func (t *composeTarget) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for n, id := range t.ids {
		_ = t.docker(ctx, "unpause", id)
		_ = t.Heal(ctx, n, false)
		_ = t.raftFilter(ctx, n, "-D")
		_ = t.docker(ctx, "start", id)
	}
	return nil
}
