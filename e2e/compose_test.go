//go:build e2e

package e2e

// Docker and docker compose helpers. Every command names the compose project
// explicitly (-p), so nothing here can reach another project's containers.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

// env is what scripts/e2e-compose.sh tells the test.
type env struct {
	project     string            // compose project name
	compose     []string          // "docker compose" or "docker-compose", split
	composeFile string            // path of docker-compose.yml
	urls        map[string]string // service name -> base URL on the host
	network     string            // the project's network, ${project}_sessiond
}

// loadEnv reads E2E_PROJECT, E2E_COMPOSE, E2E_COMPOSE_FILE and E2E_URLS
// ("node1=https://127.0.0.1:18081,node2=…"), and the client credentials
// from SESSIOND_CA and SESSIOND_TOKEN. Without them the test skips: it
// needs a cluster that scripts/e2e-compose.sh started.
func loadEnv(t *testing.T) *env {
	t.Helper()
	e := &env{project: os.Getenv("E2E_PROJECT"), composeFile: os.Getenv("E2E_COMPOSE_FILE"), urls: map[string]string{}}
	if e.project == "" {
		t.Skip("E2E_PROJECT is not set; run scripts/e2e-compose.sh")
	}
	if e.project == "sessiond" {
		t.Fatal("refusing to run against the default compose project \"sessiond\"")
	}
	e.compose = strings.Fields(os.Getenv("E2E_COMPOSE"))
	if len(e.compose) == 0 {
		e.compose = []string{"docker-compose"}
	}
	for _, kv := range strings.Split(os.Getenv("E2E_URLS"), ",") {
		name, url, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok {
			e.urls[name] = strings.TrimRight(url, "/")
		}
	}
	for _, n := range []string{"node1", "node2", "node3", "node4"} {
		if e.urls[n] == "" {
			t.Fatalf("E2E_URLS has no URL for %s: %q", n, os.Getenv("E2E_URLS"))
		}
	}
	if err := setupClient(); err != nil {
		t.Fatalf("client credentials (SESSIOND_CA, SESSIOND_TOKEN): %v", err)
	}
	return e
}

// run executes a command with a deadline and returns its combined output.
func run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	s := strings.TrimSpace(out.String())
	if err != nil {
		return s, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, s)
	}
	return s, nil
}

func docker(timeout time.Duration, args ...string) (string, error) {
	return run(timeout, "docker", args...)
}

// composeRun runs the compose CLI on this project: compose -p P [-f F] args….
func (e *env) composeRun(timeout time.Duration, args ...string) (string, error) {
	full := append([]string{}, e.compose[1:]...)
	full = append(full, "-p", e.project)
	if e.composeFile != "" {
		full = append(full, "-f", e.composeFile)
	}
	full = append(full, args...)
	return run(timeout, e.compose[0], full...)
}

// containerID is the id of a service's container (compose ps -q).
func (e *env) containerID(svc string) (string, error) {
	out, err := e.composeRun(30*time.Second, "--profile", "scale", "ps", "-q", svc)
	if err != nil {
		return "", err
	}
	if id := strings.TrimSpace(out); id != "" && !strings.ContainsAny(id, " \n") {
		return id, nil
	}
	return "", fmt.Errorf("compose ps -q %s gave %q", svc, out)
}

func (e *env) mustID(t *testing.T, svc string) string {
	t.Helper()
	id, err := e.containerID(svc)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// health is the container's health status (starting, healthy, unhealthy) or
// its state when it is not running.
func health(id string) string {
	out, err := docker(15*time.Second, "inspect", "-f", "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", id)
	if err != nil {
		return "unknown"
	}
	state, h, _ := strings.Cut(out, " ")
	if state != "running" {
		return state
	}
	return h
}

// waitHealthy polls docker's health status of the services' containers.
func (e *env) waitHealthy(timeout time.Duration, svcs ...string) error {
	deadline := time.Now().Add(timeout)
	for _, svc := range svcs {
		for {
			id, err := e.containerID(svc)
			h := "no container"
			if err == nil {
				h = health(id)
			}
			if h == "healthy" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not healthy after %v (status: %s)", svc, timeout, h)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	return nil
}

// checkNetwork confirms that the project's network exists under the name
// compose gives it, ${project}_sessiond, and that container id is on it.
func (e *env) checkNetwork(id string) error {
	want := e.project + "_sessiond"
	out, err := docker(15*time.Second, "network", "ls", "--format", "{{.Name}}")
	if err != nil {
		return err
	}
	if !contains(strings.Fields(out), want) {
		return fmt.Errorf("network %s not found; docker network ls: %s", want, strings.Join(strings.Fields(out), " "))
	}
	nets, err := containerNetworks(id)
	if err != nil {
		return err
	}
	if !contains(nets, want) {
		return fmt.Errorf("container %.12s is on networks %v, not on %s", id, nets, want)
	}
	e.network = want
	return nil
}

func containerNetworks(id string) ([]string, error) {
	out, err := docker(15*time.Second, "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", id)
	if err != nil {
		return nil, err
	}
	nets := strings.Fields(out)
	sort.Strings(nets)
	return nets, nil
}

// containerIP is the container's address on a network, "" when it is not on it.
func containerIP(id, network string) string {
	out, err := docker(15*time.Second, "inspect", "-f",
		fmt.Sprintf("{{with index .NetworkSettings.Networks %q}}{{.IPAddress}}{{end}}", network), id)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// resolves reports whether, inside container from, the name host resolves:
// it runs the image's own healthcheck against host:8080 (the image has no
// shell). A "no such host" answer means it does not; any other answer,
// ready or not, means the name resolved.
func resolves(from, host string) (bool, string) {
	out, err := docker(20*time.Second, "exec", from, "/sessiond", "healthcheck", "--timeout", "2s", "--addr", host+":8080")
	if err == nil {
		return true, "ready"
	}
	if strings.Contains(out, "no such host") || strings.Contains(out, "server misbehaving") {
		return false, out
	}
	if strings.Contains(out, "healthcheck:") {
		return true, out
	}
	return false, out
}

// logTail is the last n lines of a container's log.
func logTail(id string, n int) string {
	out, _ := docker(30*time.Second, "logs", "--tail", fmt.Sprint(n), id)
	return out
}

// dumpLogs writes the tail of every node's log to the test log.
func (e *env) dumpLogs(t *testing.T, svcs []string, n int) {
	for _, svc := range svcs {
		id, err := e.containerID(svc)
		if err != nil {
			continue
		}
		t.Logf("---- last %d log lines of %s (%s) ----\n%s", n, svc, id[:12], logTail(id, n))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
