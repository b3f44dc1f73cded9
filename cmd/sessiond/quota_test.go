package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A node over its data quota stops the cluster from growing the shards it
// holds, whichever node a write arrives at, and says so in /v1/cluster;
// reads and deletes keep working, and once deletes bring the node back
// under its quota writes are accepted again.
func TestDataQuotaRefusesWritesUntilDataIsDeleted(t *testing.T) {
	procs := startClusterWith(t, 3, 2, func(i int, p *proc) {
		if i == 1 {
			p.extraArgs = append(p.extraArgs, "--max-data-bytes", "256KiB")
		}
	})
	content := strings.Repeat("x", 16<<10)
	body := func(n int) string { return fmt.Sprintf(`{"id":"m%d","role":"user","content":%q}`, n, content) }

	// Fill through n1 and n3, which have no quota of their own, until the
	// cluster refuses: n2 holds a replica of every shard.
	var sessions []string
	refused, retries := false, 0
	for n := 0; n < 400 && !refused; n++ {
		p := procs[[]int{0, 2}[n%2]]
		s := fmt.Sprintf("fill-%d", n)
		code, b := do(t, http.MethodPost, p.url("/api/chat/session/"+s+"/messages"), "", body(n))
		switch {
		case code == http.StatusCreated, code == http.StatusOK: // 200: stored by an earlier try
			sessions = append(sessions, s)
		case code == http.StatusInsufficientStorage && errorCode(b) == "insufficient_storage" && strings.Contains(string(b), "n2"):
			refused = true
		case code == http.StatusServiceUnavailable:
			// An election: not applied, or (outcome_unknown) perhaps
			// applied. The message has an id, so the same append again
			// settles it either way.
			if retries++; retries > 300 {
				t.Fatalf("append %d: still %d %s after 30 s of retries", n, code, b)
			}
			time.Sleep(100 * time.Millisecond)
			n--
			continue
		default:
			t.Fatalf("append %d = %d %s", n, code, b)
		}
		if n%16 == 15 {
			time.Sleep(200 * time.Millisecond) // let n2 notice and gossip its alarm
		}
	}
	if !refused {
		t.Fatalf("%d appends of 16 KiB were all accepted by a cluster whose n2 allows 256 KiB", len(sessions))
	}
	for _, p := range procs {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			code, b := do(t, http.MethodPost, p.url("/api/chat/session/fresh/messages"), "", body(9999))
			if code == http.StatusInsufficientStorage {
				break
			}
			// 503 is an election; 201 or 200 (the same id again) a node
			// that has not yet heard n2's alarm, which travels by gossip.
			notYet := code == http.StatusServiceUnavailable || code == http.StatusCreated || code == http.StatusOK
			if !notYet || time.Now().After(deadline) {
				t.Fatalf("append on %s while n2 is over quota = %d %.200s", p.httpAddr(), code, b)
			}
		}
		_, view := get(p.url("/v1/cluster"))
		var v struct{ Alarms []struct{ Node, Kind string } }
		if err := json.Unmarshal(view, &v); err != nil || len(v.Alarms) != 1 || v.Alarms[0].Node != "n2" || v.Alarms[0].Kind != "nospace" {
			t.Fatalf("/v1/cluster alarms on %s = %+v (%v)", p.httpAddr(), v.Alarms, err)
		}
	}

	// Reads and deletes go on; deleting makes room again.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, b := get(procs[1].url("/api/chat/session/" + sessions[0] + "/messages"))
		if code == http.StatusOK {
			break
		}
		// An election may be under way (503 no_leader); the quota is never the reason.
		if code != http.StatusServiceUnavailable || errorCode(b) == "insufficient_storage" || time.Now().After(deadline) {
			t.Fatalf("read while over quota = %d %s", code, b)
		}
	}
	for _, s := range sessions {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			code, b := do(t, http.MethodDelete, procs[0].url("/api/chat/session/"+s), "", "")
			if code == http.StatusNoContent {
				break
			}
			if code != http.StatusServiceUnavailable || errorCode(b) == "insufficient_storage" || time.Now().After(deadline) {
				t.Fatalf("delete %s while over quota = %d %s", s, code, b)
			}
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, b := do(t, http.MethodPost, procs[0].url("/api/chat/session/after/messages"), "", body(10000))
		if code == http.StatusCreated {
			break
		}
		if code != http.StatusInsufficientStorage || time.Now().After(deadline) {
			t.Fatalf("append after deleting everything = %d %s", code, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
