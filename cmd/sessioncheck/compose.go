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
	creds   check.Credentials // for drain requests
}

// newComposeTarget finds the project's node containers and their published
// HTTP ports. A node's URL is https:// when the node runs with TLS, as its
// container's health check decides: when SESSIOND_TLS_CERT is set.
func newComposeTarget(ctx context.Context, o composeOptions, creds check.Credentials) (*composeTarget, error) {
	t := &composeTarget{ids: map[string]string{}, creds: creds}
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
		port = strings.Fields(port)[0] // "127.0.0.1:18081", perhaps followed by the IPv6 line
		port = port[strings.LastIndex(port, ":")+1:]
		useTLS, tokens, err := nodeSecurity(ctx, id)
		if err != nil {
			return nil, err
		}
		hint := fmt.Sprintf("(`COMPOSE_PROJECT_NAME=%s scripts/compose.sh secrets DIR` copies ca.pem and tokens out of the project)", o.project)
		if useTLS && creds.TLS == nil {
			return nil, fmt.Errorf("%s serves HTTPS with a certificate of the cluster's own CA: pass --ca or set SESSIOND_CA %s", svc, hint)
		}
		if tokens && creds.Token == "" {
			return nil, fmt.Errorf("%s requires a bearer token: set SESSIOND_TOKEN (or --token) to its admin token %s", svc, hint)
		}
		scheme := "http"
		if useTLS {
			scheme = "https"
		}
		t.ids[svc] = id
		t.nodes = append(t.nodes, check.Node{Name: svc, URL: scheme + "://127.0.0.1:" + port})
	}
	return t, nil
}

// nodeSecurity reports whether the container's node runs with TLS and
// with a token file, from its environment and its arguments.
func nodeSecurity(ctx context.Context, id string) (useTLS, tokens bool, err error) {
	out, err := command(ctx, 10*time.Second, "docker", "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}{{range .Args}}{{println .}}{{end}}", id)
	if err != nil {
		return false, false, err
	}
	useTLS, tokens = parseNodeSecurity(out)
	return useTLS, tokens, nil
}

// parseNodeSecurity reads nodeSecurity's answer from a container's
// environment and arguments, one a line.
func parseNodeSecurity(out string) (useTLS, tokens bool) {
	for _, line := range strings.Split(out, "\n") {
		name, val, isEnv := strings.Cut(line, "=")
		switch {
		case isEnv && val != "" && name == "SESSIOND_TLS_CERT", strings.TrimLeft(name, "-") == "tls-cert":
			useTLS = true
		case isEnv && val != "" && name == "SESSIOND_TOKEN_FILE", strings.TrimLeft(name, "-") == "token-file":
			tokens = true
		}
	}
	return useTLS, tokens
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
	if err := check.RequestDrain(ctx, t.creds, t.nodes, n); err != nil {
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
