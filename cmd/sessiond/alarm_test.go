package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// webhook is a real receiver on loopback that refuses its first deliveries,
// as a receiver that is briefly down does.
type webhook struct {
	mu       sync.Mutex
	keys     []string
	bodies   []string
	failures int // deliveries still to refuse
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.keys = append(h.keys, r.Header.Get("Idempotency-Key"))
	h.bodies = append(h.bodies, string(b))
	if h.failures > 0 {
		h.failures--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *webhook) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string{}, h.keys...)
}

// An alarm whose shard leader is killed with kill -9 at its due time fires
// exactly once: one alarm event on the change stream, one entry in the
// session's fired list, and every delivery the webhook sees (its first
// ones refused) carries the same idempotency key.
func TestAnAlarmFiresExactlyOnceWhenItsLeaderDiesAtTheDueTime(t *testing.T) {
	hook := &webhook{failures: 2}
	receiver := httptest.NewServer(hook)
	defer receiver.Close()
	procs := startCluster(t, 3, 2, "--alarm-webhook", receiver.URL)
	const session = "with-alarm"
	if code, _ := procs[0].appendMessage(session, "m1"); code != http.StatusCreated {
		t.Fatalf("append = %d", code)
	}
	var owner struct{ Leader string }
	_, body := get(procs[0].url("/v1/sessions/" + session + "/owner"))
	if err := json.Unmarshal(body, &owner); err != nil || owner.Leader == "" {
		t.Fatalf("owner: %s", body)
	}
	var leader *proc
	var others []*proc
	for i, p := range procs {
		if fmt.Sprintf("n%d", i+1) == owner.Leader {
			leader = p
		} else {
			others = append(others, p)
		}
	}
	watch := follow(t, others[0], session)
	watch.messages(1)

	due := time.Now().Add(2 * time.Second)
	code, b := do(t, http.MethodPut, others[1].url("/api/chat/session/"+session+"/alarms/remind"), "",
		fmt.Sprintf(`{"at":%d,"payload":{"text":"call back"}}`, due.UnixMilli()))
	if code != http.StatusOK {
		t.Fatalf("PUT alarm = %d %s", code, b)
	}
	time.Sleep(time.Until(due))
	leader.cmd.Process.Signal(syscall.SIGKILL)
	<-leader.exited

	// The fire is recorded once and delivered, after the refusals.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var a struct {
			Alarms []any
			Fired  []struct {
				Name      string
				Version   uint64
				Delivered bool
			}
		}
		_, b := get(others[0].url("/api/chat/session/" + session + "/alarms"))
		json.Unmarshal(b, &a)
		if len(a.Fired) > 1 || len(a.Alarms) > 0 && len(a.Fired) > 0 {
			t.Fatalf("alarms after the fire: %s", b)
		}
		if len(a.Fired) == 1 && a.Fired[0].Delivered {
			want := fmt.Sprintf("%s:remind:%d", session, a.Fired[0].Version)
			keys := hook.received()
			if len(keys) < 3 {
				t.Fatalf("the webhook saw %d deliveries, want the 2 refused and 1 accepted", len(keys))
			}
			for _, k := range keys {
				if k != want {
					t.Fatalf("deliveries carried keys %v, want %s on every one", keys, want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the alarm was not fired and delivered within 60 s: %s; webhook saw %v", b, hook.received())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(hook.bodies[0], `"text":"call back"`) {
		t.Fatalf("the delivery lacks the payload: %s", hook.bodies[0])
	}
	// One alarm event on the stream, however the leadership moved.
	time.Sleep(500 * time.Millisecond)
	n := 0
	for _, id := range watch.ids() {
		if strings.HasPrefix(id, "alarm@") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the stream saw %d alarm events, want 1: %v", n, watch.ids())
	}
}
