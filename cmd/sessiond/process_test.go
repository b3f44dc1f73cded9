package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// These tests run the real sessiond binary: one node, real raft on loopback
// ports, real files in a temp data dir.

// TestSIGKILLLosesNoAcknowledgedAppend appends N messages, each acknowledged
// with 201, kills the process with SIGKILL right after the last
// acknowledgement, restarts it on the same data dir and finds all N, in
// order, with seq 1..N: an acknowledgement means the entry was fsynced.
func TestSIGKILLLosesNoAcknowledgedAppend(t *testing.T) {
	const n = 200
	p := newProc(t, 4)
	p.start()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%d", i+1)
		code, m := p.appendMessage("chat", ids[i])
		if code != http.StatusCreated || m.Seq != uint64(i+1) || m.ID != ids[i] {
			t.Fatalf("append %s = %d %+v, want 201 with seq %d", ids[i], code, m, i+1)
		}
	}
	// Sessions on every shard, written just before the kill.
	var others []string
	for i := 0; i < 40; i++ {
		s := fmt.Sprintf("other-%d", i)
		if code, _ := p.appendMessage(s, "only"); code != http.StatusCreated {
			t.Fatalf("append to %s = %d", s, code)
		}
		others = append(others, s)
	}
	if code := p.signal(syscall.SIGKILL); code != -1 {
		t.Fatalf("SIGKILL exit code %d", code)
	}

	p.start()
	p.checkMessages("chat", ids)
	for _, s := range others {
		p.checkMessages(s, []string{"only"})
	}
	// Retrying an acknowledged append after the crash does not duplicate it,
	// and new appends continue the sequence.
	if code, m := p.appendMessage("chat", ids[n-1]); code != http.StatusOK || m.Seq != n {
		t.Fatalf("retried append = %d %+v, want 200 with seq %d", code, m, n)
	}
	if code, m := p.appendMessage("chat", "after-crash"); code != http.StatusCreated || m.Seq != n+1 {
		t.Fatalf("append after restart = %d %+v, want 201 with seq %d", code, m, n+1)
	}
}

// TestSIGKILLDuringConcurrentAppendsKeepsEveryAcknowledgedOne kills the
// process while eight clients are appending. After a restart every
// acknowledged message is there, each session's seqs run 1..k without gaps,
// and no message is stored twice; appends that were in flight may or may not
// have landed.
func TestSIGKILLDuringConcurrentAppendsKeepsEveryAcknowledgedOne(t *testing.T) {
	const writers = 8
	p := newProc(t, 4)
	p.start()
	var acked [writers][]string
	var total atomic.Int64
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; ; i++ {
				id := fmt.Sprintf("w%d-m%d", w, i)
				code, m := p.appendMessage(fmt.Sprintf("writer-%d", w), id)
				if code != http.StatusCreated {
					select {
					case <-killed: // the kill cut this request off
					default:
						t.Errorf("append %s = %d before the kill", id, code)
					}
					return
				}
				// A 201 was sent before the process died, whenever it
				// arrives: this message must survive.
				if m.Seq != uint64(i) {
					t.Errorf("append %s got seq %d, want %d", id, m.Seq, i)
					return
				}
				acked[w] = append(acked[w], id)
				total.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for total.Load() < 300 && !t.Failed() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// killed is closed first: a writer can see its connection reset
	// before Signal returns.
	close(killed)
	err := p.cmd.Process.Signal(syscall.SIGKILL)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	<-p.exited
	if t.Failed() {
		t.FailNow()
	}

	p.start()
	for w := 0; w < writers; w++ {
		got := p.messages(fmt.Sprintf("writer-%d", w))
		if len(got) < len(acked[w]) {
			t.Fatalf("writer-%d holds %d messages, %d were acknowledged", w, len(got), len(acked[w]))
		}
		for i, m := range got {
			want := fmt.Sprintf("w%d-m%d", w, i+1)
			if m.Seq != uint64(i+1) || m.ID != want {
				t.Fatalf("writer-%d message %d = %+v, want seq %d id %s (gap or duplicate)", w, i, m, i+1, want)
			}
		}
	}
}

// TestSIGTERMShutsDownCleanly stops the node with SIGTERM: it exits 0, and
// a restart on the same data dir serves everything written before.
func TestSIGTERMShutsDownCleanly(t *testing.T) {
	p := newProc(t, 2)
	p.start()
	var ids []string
	for i := 1; i <= 20; i++ {
		id := fmt.Sprintf("m%d", i)
		if code, _ := p.appendMessage("chat", id); code != http.StatusCreated {
			t.Fatalf("append %s = %d", id, code)
		}
		ids = append(ids, id)
	}
	if code := p.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
	if out := p.output(); !strings.Contains(out, "stopped") {
		t.Fatalf("no clean-shutdown log line:\n%s", out)
	}
	p.start()
	p.checkMessages("chat", ids)

	if code := p.signal(syscall.SIGINT); code != 0 {
		t.Fatalf("exit code after SIGINT = %d, want 0", code)
	}
}

// TestHealthcheckSubcommand checks the container probe: 0 when the node at
// --addr is ready, non-zero when nothing listens there or --addr is bad.
func TestHealthcheckSubcommand(t *testing.T) {
	p := newProc(t, 1)
	p.start()
	if code, out := runBinary(t, nil, "healthcheck", "--addr", p.httpAddr()); code != 0 {
		t.Fatalf("healthcheck of a ready node = %d: %s", code, out)
	}
	// SESSIOND_HTTP_ADDR is the default --addr, as in a container.
	if code, out := runBinary(t, []string{"SESSIOND_HTTP_ADDR=" + p.httpAddr()}, "healthcheck"); code != 0 {
		t.Fatalf("healthcheck with SESSIOND_HTTP_ADDR = %d: %s", code, out)
	}
	// A wildcard listen address is probed on loopback.
	if code, out := runBinary(t, nil, "healthcheck", "--addr", fmt.Sprintf("0.0.0.0:%d", p.http)); code != 0 {
		t.Fatalf("healthcheck of 0.0.0.0:%d = %d: %s", p.http, code, out)
	}
	p.signal(syscall.SIGKILL)
	if code, _ := runBinary(t, nil, "healthcheck", "--addr", p.httpAddr(), "--timeout", "2s"); code == 0 {
		t.Fatal("healthcheck succeeded with nothing listening")
	}
	if code, _ := runBinary(t, nil, "healthcheck", "--addr", "no-port"); code == 0 {
		t.Fatal("healthcheck succeeded with a bad --addr")
	}
}

func TestVersionSubcommand(t *testing.T) {
	code, out := runBinary(t, nil, "version")
	if code != 0 || strings.TrimSpace(out) != "sessiond "+testVersion {
		t.Fatalf("sessiond version = %d %q, want %q", code, out, "sessiond "+testVersion)
	}
}

// TestInvalidConfigExitsWithUsageError: a bad flag stops the process before
// it touches the data dir, with exit code 2 and the reason on stderr.
func TestInvalidConfigExitsWithUsageError(t *testing.T) {
	dir := t.TempDir() + "/data"
	code, out := runBinary(t, nil, "--data-dir", dir, "--shards", "0")
	if code != 2 || !strings.Contains(out, "--shards must be between 1 and 1024") {
		t.Fatalf("sessiond --shards 0 = %d %q", code, out)
	}
	code, out = runBinary(t, []string{"SESSIOND_LOG_LEVEL=loud"}, "--data-dir", dir)
	if code != 2 || !strings.Contains(out, "--log-level") {
		t.Fatalf("SESSIOND_LOG_LEVEL=loud = %d %q", code, out)
	}
	code, out = runBinary(t, nil, "--data-dir", dir, "--http-addr", "0.0.0.0:0", "--advertise-addr", "10.0.0.5")
	if code != 2 || !strings.Contains(out, "--tls-ca, --tls-cert and --tls-key and --gossip-key") {
		t.Fatalf("sessiond on 0.0.0.0 without TLS = %d %q", code, out)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused start created the data dir: %v", err)
	}
}

// TestRestartWithAnotherShardCountIsRefused: the shard count is part of the
// on-disk format, so the process refuses to start and exits non-zero.
func TestRestartWithAnotherShardCountIsRefused(t *testing.T) {
	p := newProc(t, 2)
	p.start()
	if code := p.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM exit code %d", code)
	}
	code, out := runBinary(t, nil, "--node-id", "n1", "--data-dir", p.dir, "--http-addr", p.httpAddr(),
		"--raft-addr", fmt.Sprintf("127.0.0.1:%d", p.raft), "--gossip-addr", fmt.Sprintf("127.0.0.1:%d", p.gossip),
		"--shards", "8")
	if code == 0 || !strings.Contains(out, "2 shards") {
		t.Fatalf("restart with --shards 8 = %d %q; want a refusal naming the 2 shards", code, out)
	}
}
