package raftlog

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

const crashChildEnv = "RAFTLOG_CRASH_CHILD_DIR"

// TestMain lets the test binary double as the writer process that
// TestAcknowledgedWritesSurviveKill9 kills.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild writes to eight shards as fast as it can and prints
// "shard index" for every entry once StoreLogs has returned, until killed.
func crashChild(dir string) {
	l, err := Open(dir, Options{SegmentSize: 256 << 10, MaxSegments: 3, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	for sh := uint32(0); sh < 8; sh++ {
		go func() {
			s := l.Shard(sh)
			last, _ := s.LastIndex()
			for i := last + 1; ; i += 4 {
				if err := s.StoreLogs(entries(sh, i, i+3, 1)); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				if i > 400 && i%100 == 1 {
					first, _ := s.FirstIndex()
					s.DeleteRange(first, i-300)
				}
				mu.Lock()
				fmt.Fprintf(out, "%d %d\n", sh, i+3)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	select {}
}

func TestAcknowledgedWritesSurviveKill9(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	acked := map[uint32]uint64{}
	for round := 0; round < 3; round++ {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		deadline := time.Now().Add(time.Duration(300+200*round) * time.Millisecond)
		lines := 0
		for sc.Scan() {
			var sh uint32
			var idx uint64
			fmt.Sscanf(sc.Text(), "%d %d", &sh, &idx)
			acked[sh] = max(acked[sh], idx)
			lines++
			if time.Now().After(deadline) {
				break
			}
		}
		// Killed in the middle of whatever batch it was writing.
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if lines == 0 {
			t.Fatalf("round %d: the writer acknowledged nothing", round)
		}
		l, err := Open(dir, Options{SegmentSize: 256 << 10, MaxSegments: 3, Logger: quietLogger()})
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		for sh, idx := range acked {
			s := l.Shard(sh)
			first, _ := s.FirstIndex()
			last, _ := s.LastIndex()
			if last < idx {
				t.Fatalf("round %d: shard %d has %d..%d, but %d was acknowledged", round, sh, first, last, idx)
			}
			for i := max(first, idx-50); i <= last; i++ {
				var e raft.Log
				if err := s.GetLog(i, &e); err != nil || !sameEntries(&e, entry(sh, i, 1)) {
					t.Fatalf("round %d: shard %d entry %d: %v %q", round, sh, i, err, e.Data)
				}
			}
		}
		t.Logf("round %d: %d acknowledgements before kill -9, all present", round, lines)
		l.Close()
	}
}
