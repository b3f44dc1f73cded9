package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
)

// TestPprofAnswersOnItsLoopbackListener serves the profiling handler on a
// real loopback listener and fetches the index, a heap profile and the
// command line from it.
func TestPprofAnswersOnItsLoopbackListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := servePprof(ln, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	for path, want := range map[string]string{
		"/debug/pprof/":             "goroutine",
		"/debug/pprof/heap?debug=1": "heap profile",
		"/debug/pprof/cmdline":      "",
	} {
		code, body := get(base + path)
		if code != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d %.200s; want 200 containing %q", path, code, body, want)
		}
	}
	if code, _ := get(base + "/api/chat/session/x"); code != http.StatusNotFound {
		t.Errorf("the pprof listener answers API routes: %d", code)
	}
}

// TestPprofIsServedApartFromTheAPI runs sessiond with --pprof-addr: the
// profiles answer on that address and not on the API's.
func TestPprofIsServedApartFromTheAPI(t *testing.T) {
	p := newProc(t, 1)
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	p.extraArgs = []string{"--pprof-addr", pprofAddr}
	p.start()
	if code, body := get("http://" + pprofAddr + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Fatalf("pprof on %s = %d %.200s", pprofAddr, code, body)
	}
	if code, _ := get(p.url("/debug/pprof/")); code != http.StatusNotFound {
		t.Fatalf("the API port serves /debug/pprof/: %d", code)
	}
	if code := p.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if _, err := net.Dial("tcp", pprofAddr); err == nil {
		t.Fatalf("pprof still listening on %s after the node stopped", pprofAddr)
	}
}
