package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// watch prints every event once across a stream that ends: it reconnects,
// to the next node, with the last event id it printed.
func TestWatchResumesAcrossNodesWithTheLastEventID(t *testing.T) {
	var resumedWith atomic.Value
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/chat/session/s1/events" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: 4\nevent: snapshot\ndata: {\"id\":\"s1\"}\n\n: keepalive\n\nid: 5\nevent: message\ndata: {\"seq\":1}\n\nevent: resume\ndata: {}\n\n")
	}))
	defer first.Close()
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resumedWith.Store(r.Header.Get("Last-Event-ID"))
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: 6\nevent: message\ndata: {\"seq\":2}\n\n")
	}))
	defer second.Close()
	code, out, errOut := run(t, "", "--addr", first.URL+","+second.URL, "watch", "s1", "--count", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "snapshot") || !strings.Contains(lines[2], `{"seq":2}`) {
		t.Fatalf("output:\n%s", out)
	}
	if got := resumedWith.Load(); got != "5" {
		t.Fatalf("reconnected with Last-Event-ID %v, want 5", got)
	}
	code, out, _ = run(t, "", "--addr", second.URL, "-o", "json", "watch", "s1", "--after", "5", "--count", "1")
	if code != 0 || strings.TrimSpace(out) != `{"id":"6","event":"message","data":{"seq":2}}` {
		t.Fatalf("json output %d: %s", code, out)
	}
}

func TestAlarmsListsPendingAndFired(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/chat/session/s1/alarms" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{"alarms":[{"name":"later","at":4102444800000}],"fired":[{"name":"remind","at":1000,"firedAt":1500,"version":9,"delivered":true,"payload":{"k":1}}]}`)
	}))
	defer srv.Close()
	code, out, errOut := run(t, "", "--addr", srv.URL, "alarms", "s1")
	if code != 0 || !strings.Contains(out, "later") || !strings.Contains(out, "pending") || !strings.Contains(out, "delivered") || !strings.Contains(out, `{"k":1}`) {
		t.Fatalf("exit %d, output:\n%s%s", code, out, errOut)
	}
}
