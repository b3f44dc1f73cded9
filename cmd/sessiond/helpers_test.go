package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testVersion is stamped into the test binary to check -X main.version works.
const testVersion = "v0.0.0-test"

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// sessiondBinary builds the sessiond command once per test run, the way a
// release is built, and returns its path.
func sessiondBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "sessiond-bin-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "sessiond")
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		}
		cmd := exec.Command(goTool, "build", "-ldflags", "-X main.version="+testVersion, "-o", binPath, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// handedOut holds every port freePorts returned in this process: a port is
// only probed, not held, until its node starts, so without this record the
// next node's probe could get a port the previous node has not bound yet.
var handedOut sync.Map

// freePorts returns n loopback ports that were free a moment ago and that
// no earlier call returned.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close() // held until all n are picked
		port := l.Addr().(*net.TCPAddr).Port
		if _, taken := handedOut.LoadOrStore(port, true); !taken {
			ports = append(ports, port)
		}
	}
	return ports
}

// childEnv is this process's environment without SESSIOND_* variables, so
// only the flags a test passes configure the child.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SESSIOND_") {
			env = append(env, kv)
		}
	}
	return env
}

// proc is one sessiond process with fixed ports and data dir, which survive
// restarts.
type proc struct {
	t                  *testing.T
	dir                string
	http, raft, gossip int
	shards             int
	extraArgs          []string
	// tlsClient, when set, is the HTTPS client for a node running TLS.
	tlsClient *http.Client
	cmd       *exec.Cmd
	exited    chan struct{}
	waitErr   error
	logs      *bytes.Buffer
	logMu     *sync.Mutex
}

func newProc(t *testing.T, shards int) *proc {
	ports := freePorts(t, 3)
	p := &proc{t: t, dir: t.TempDir(), http: ports[0], raft: ports[1], gossip: ports[2], shards: shards}
	t.Cleanup(func() {
		if p.cmd != nil && p.running() {
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("sessiond output:\n%s", p.output())
		}
	})
	return p
}

func (p *proc) httpAddr() string { return fmt.Sprintf("127.0.0.1:%d", p.http) }

func (p *proc) url(path string) string {
	if p.tlsClient != nil {
		return "https://" + p.httpAddr() + path
	}
	return "http://" + p.httpAddr() + path
}

// client is the HTTP client that reaches p.
func (p *proc) client() *http.Client {
	if p.tlsClient != nil {
		return p.tlsClient
	}
	return client
}

// start launches sessiond and waits until /readyz answers 200.
func (p *proc) start() {
	p.t.Helper()
	p.startNoWait()
	p.waitReady()
}

// startNoWait launches sessiond without waiting for it to be ready: nodes
// that form a cluster together are only ready once all of them run.
func (p *proc) startNoWait() {
	p.t.Helper()
	args := []string{"--node-id", "n1", "--data-dir", p.dir, "--http-addr", p.httpAddr(),
		"--raft-addr", fmt.Sprintf("127.0.0.1:%d", p.raft), "--gossip-addr", fmt.Sprintf("127.0.0.1:%d", p.gossip),
		"--shards", fmt.Sprint(p.shards), "--log-level", "info"}
	p.cmd = exec.Command(sessiondBinary(p.t), append(args, p.extraArgs...)...)
	p.cmd.Env = childEnv()
	if p.logs == nil {
		p.logs, p.logMu = &bytes.Buffer{}, &sync.Mutex{}
	}
	w := &lockedWriter{buf: p.logs, mu: p.logMu}
	fmt.Fprintf(w, "--- start %s\n", strings.Join(p.cmd.Args, " "))
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if !p.running() {
			p.t.Fatalf("sessiond exited before it was ready: %v\n%s", p.waitErr, p.output())
		}
		code, _ := getWith(p.client(), p.url("/readyz"))
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("sessiond not ready within 60s (last /readyz %d)\n%s", code, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signal sends sig and waits for the process to exit; it returns the exit
// code (-1 when killed by a signal).
func (p *proc) signal(sig syscall.Signal) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("sessiond still running 60s after %v", sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) output() string {
	if p.logs == nil {
		return ""
	}
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.logs.String()
}

type lockedWriter struct {
	buf *bytes.Buffer
	mu  *sync.Mutex
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

var client = &http.Client{Timeout: 15 * time.Second}

func get(url string) (int, []byte) { return getWith(client, url) }

func getWith(c *http.Client, url string) (int, []byte) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type message struct {
	Seq     uint64 `json:"seq"`
	ID      string `json:"id"`
	Role    string `json:"role"`
	Content string `json:"content"`
}

// appendMessage posts one message with a client-chosen id and returns the
// status and the stored message.
func (p *proc) appendMessage(session, id string) (int, message) {
	body, _ := json.Marshal(map[string]string{"id": id, "role": "user", "content": "content of " + id})
	resp, err := client.Post(p.url("/api/chat/session/"+session+"/messages"), "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, message{}
	}
	defer resp.Body.Close()
	var out struct{ Messages []message }
	b, _ := io.ReadAll(resp.Body)
	if json.Unmarshal(b, &out) != nil || len(out.Messages) != 1 {
		return resp.StatusCode, message{}
	}
	return resp.StatusCode, out.Messages[0]
}

// messages reads every message of session (linearizable, the default).
func (p *proc) messages(session string) []message {
	p.t.Helper()
	code, body := get(p.url("/api/chat/session/" + session + "/messages?limit=1000"))
	if code != http.StatusOK {
		p.t.Fatalf("GET messages of %s = %d %s", session, code, body)
	}
	var page struct{ Messages []message }
	if err := json.Unmarshal(body, &page); err != nil {
		p.t.Fatalf("decode %s: %v", body, err)
	}
	return page.Messages
}

// checkMessages fails unless session holds exactly ids[0..n) with seq 1..n.
func (p *proc) checkMessages(session string, ids []string) {
	p.t.Helper()
	got := p.messages(session)
	if len(got) != len(ids) {
		p.t.Fatalf("%s holds %d messages, want %d", session, len(got), len(ids))
	}
	for i, m := range got {
		if m.Seq != uint64(i+1) || m.ID != ids[i] || m.Content != "content of "+ids[i] {
			p.t.Fatalf("%s message %d = %+v, want seq %d id %s", session, i, m, i+1, ids[i])
		}
	}
}

// runBinary runs the sessiond binary with args and returns its exit code and
// combined output.
func runBinary(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(sessiondBinary(t), args...)
	cmd.Env = append(childEnv(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("run sessiond %v: %v", args, err)
	}
	return 0, string(out)
}
