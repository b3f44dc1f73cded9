package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// A session with its own short ttl is removed by its shard leader soon
// after the ttl runs out, on every replica; a session without one stays
// (no --session-ttl); a change stream of the session sees it go.
func TestSessionsExpireByTheirOwnTTL(t *testing.T) {
	procs := startCluster(t, 3, 2)
	n1, n2 := procs[0], procs[1]
	for _, s := range []string{"short", "forever"} {
		if code, _ := n1.appendMessage(s, "m1"); code != http.StatusCreated {
			t.Fatalf("append to %s = %d", s, code)
		}
	}
	watch := follow(t, n2, "short")
	watch.messages(1)
	if code, b := do(t, http.MethodPut, n1.url("/api/chat/session/short/expiry"), "", `{"ttl":"1s"}`); code != http.StatusOK {
		t.Fatalf("PUT expiry = %d %s", code, b)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		gone := true
		for _, p := range procs {
			if code, _ := get(p.url("/api/chat/session/short?consistency=stale")); code != http.StatusNotFound {
				gone = false
			}
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the session with a 1s ttl is still there 15 s later")
		}
		time.Sleep(200 * time.Millisecond)
	}
	code, _ := get(n2.url("/api/chat/session/forever"))
	for deadline := time.Now().Add(10 * time.Second); code == http.StatusServiceUnavailable && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond) // an election: a read answered nothing yet
		code, _ = get(n2.url("/api/chat/session/forever"))
	}
	if code != http.StatusOK {
		t.Fatalf("a session without an expiry was removed: %d", code)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ids := watch.ids()
		if len(ids) > 0 && strings.HasPrefix(ids[len(ids)-1], "deleted@") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream did not see the expiry: %v", ids)
		}
	}
}
