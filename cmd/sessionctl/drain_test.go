package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// drainPair builds the node to drain (n4, the --addr) and a member (n2)
// that the drain is watched through; progress[i] is n4 as n2 sees it on its
// i-th poll, the last entry repeating.
func drainPair(t *testing.T, progress []memberStatus) (n4, n2 *fakeNode, drained *bool) {
	n4, n2 = newFakeNode(t, "n4"), newFakeNode(t, "n2")
	drained = new(bool)
	members := func(m4 memberStatus) []memberStatus {
		m4.ID, m4.HTTPAddr = "n4", n4.host()
		return []memberStatus{{ID: "n2", State: "alive", HTTPAddr: n2.host()}, m4}
	}
	n4.set(func(v *clusterView) { v.Members = members(memberStatus{State: "alive", Replicas: 5, Leading: 2}) })
	n4.other = func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/v1/nodes/n4/drain" {
			apiErr(w, 404, "not_found", r.URL.Path)
			return
		}
		*drained = true
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"node":"n4","draining":true}`)
	}
	n2.onPoll = func(v *clusterView, n int) {
		v.Members = members(progress[min(n, len(progress))-1])
		if progress[min(n, len(progress))-1].State == "gone" {
			v.Members = v.Members[:1]
		}
	}
	return n4, n2, drained
}

func TestDrainWaitUntilLeft(t *testing.T) {
	n4, n2, drained := drainPair(t, []memberStatus{
		{State: "alive", Draining: true, Replicas: 5, Leading: 1},
		{State: "alive", Draining: true, Replicas: 2, Leading: 0},
		{State: "suspect", Draining: true, Replicas: 1, Leading: 0},
		{State: "left", Draining: true, Replicas: 1, Leading: 0},
	})
	code, out, errOut := run(t, "", "--addr", n4.host(), "drain", "n4", "--wait")
	want := "n4: draining, 5 replicas, 1 leading\nn4: draining, 2 replicas, 0 leading\n" +
		"n4: suspect, 1 replica, 0 leading\nn4: left, 1 replica, 0 leading\nn4 drained\n"
	if code != 0 || out != want || !*drained {
		t.Fatalf("exit %d, drained %v, stderr %q\n%s\nwant\n%s", code, *drained, errOut, out, want)
	}
	// Once the drain was requested, n4 (about to exit) is never asked again.
	if n4.polls != 1 || n2.polls != 4 {
		t.Errorf("n4 polled %d times (want 1, before the drain), n2 %d (want 4)", n4.polls, n2.polls)
	}
}

func TestDrainWaitEmptyOrUnlisted(t *testing.T) {
	for name, last := range map[string]memberStatus{
		"empty":    {State: "alive", Draining: true},
		"unlisted": {State: "gone"},
	} {
		n4, _, _ := drainPair(t, []memberStatus{{State: "alive", Replicas: 3}, last})
		code, out, _ := run(t, "", "--addr", n4.srv.URL, "drain", "--wait", "n4")
		if code != 0 || !strings.HasSuffix(out, "\nn4 drained\n") || strings.Count(out, "\n") != 3 {
			t.Errorf("%s: exit %d\n%s", name, code, out)
		}
	}
}

func TestDrainWaitTTYAndTimeout(t *testing.T) {
	n4, _, _ := drainPair(t, []memberStatus{{State: "alive", Draining: true, Replicas: 3, Leading: 1}})
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, tty: true, pollEvery: 10 * time.Millisecond}
	code := a.main([]string{"drain", "n4", "--wait", "--wait-timeout", "60ms"}, func(k string) string {
		if k == "SESSIOND_ADDR" {
			return n4.host()
		}
		return ""
	})
	if code != 1 || !strings.Contains(errb.String(), "n4 did not drain within 60ms (last: n4: draining, 3 replicas, 1 leading)") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "\r\033[Kn4: draining, 3 replicas, 1 leading\r\033[K") || !strings.HasSuffix(out.String(), "\n") {
		t.Errorf("progress should overwrite one line on a TTY: %q", out.String())
	}
}

func TestDrainErrors(t *testing.T) {
	n4, _, _ := drainPair(t, []memberStatus{{State: "left"}})
	n4.other = func(w http.ResponseWriter, r *http.Request) {
		apiErr(w, 409, "node_not_alive", `node "n5" is left`)
	}
	code, _, errOut := run(t, "", "--addr", n4.srv.URL, "drain", "n5")
	if code != 1 || !strings.Contains(errOut, `node_not_alive: node "n5" is left (HTTP 409`) {
		t.Errorf("exit %d: %s", code, errOut)
	}
	if got := pollAddrs([]string{"http://a:1", "http://b:1"}, []memberStatus{
		{ID: "x", State: "alive", HTTPAddr: "a:1"}, {ID: "y", State: "alive", HTTPAddr: "c:1"},
		{ID: "z", State: "dead", HTTPAddr: "d:1"}, {ID: "w", State: "alive", HTTPAddr: "b:1"},
	}, "x"); strings.Join(got, " ") != "http://b:1 http://c:1" {
		t.Errorf("pollAddrs = %q", got)
	}
}
