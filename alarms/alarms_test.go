package alarms

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/fsm"
)

// fakeReplica leads one shard whose state is a real FSM; Apply appends to
// its log at the next index.
type fakeReplica struct {
	mu      sync.Mutex
	f       *fsm.FSM
	index   uint64
	applied []fsm.Op
}

func (r *fakeReplica) IsLeader() bool { return true }
func (r *fakeReplica) FSM() *fsm.FSM  { return r.f }
func (r *fakeReplica) ops() []fsm.Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]fsm.Op{}, r.applied...)
}
func (r *fakeReplica) Apply(_ context.Context, cmd *fsm.Command) (*fsm.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.index++
	r.applied = append(r.applied, cmd.Op)
	return r.f.Apply(&raft.Log{Type: raft.LogCommand, Index: r.index, Data: cmd.Encode()}).(*fsm.Result), nil
}

// A due alarm is fired once through the replica, posted to the webhook with
// its idempotency key (again after a refusal, with the same key), and
// marked delivered once the webhook accepts it.
func TestSchedulerFiresDueAlarmsAndDeliversThemOnce(t *testing.T) {
	var posts atomic.Int32
	var mu sync.Mutex
	var keys []string
	var got Delivery
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := posts.Add(1)
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		json.NewDecoder(r.Body).Decode(&got)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer hook.Close()
	r := &fakeReplica{f: fsm.New(fsm.DefaultLimits)}
	ctx := context.Background()
	r.Apply(ctx, &fsm.Command{Op: fsm.OpAppendMessages, Session: "s", At: 1, Messages: []fsm.NewMessage{{ID: "m", Role: "user", Content: "x"}}})
	r.Apply(ctx, &fsm.Command{Op: fsm.OpSetAlarm, Session: "s", At: 1, Name: "ping", Due: 1_000, Value: json.RawMessage(`{"a":1}`)})
	r.Apply(ctx, &fsm.Command{Op: fsm.OpSetAlarm, Session: "s", At: 1, Name: "later", Due: time.Now().Add(time.Hour).UnixMilli()})

	s := New(Config{Replicas: func() []Replica { return []Replica{r} }, Webhook: hook.URL,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.Round(ctx) // fires "ping", tries to deliver it: refused
	waitFor(t, func() bool { return posts.Load() == 1 && !inFlight(s) })
	s.Round(ctx) // within the backoff: no second attempt yet
	time.Sleep(50 * time.Millisecond)
	if posts.Load() != 1 {
		t.Fatalf("a refused delivery was retried at once (%d posts)", posts.Load())
	}
	s.mu.Lock()
	for k := range s.backoff {
		s.backoff[k] = time.Time{} // the backoff has passed
	}
	s.mu.Unlock()
	s.Round(ctx)
	waitFor(t, func() bool { return len(r.f.UndeliveredAlarms(10)) == 0 })
	s.Round(ctx) // nothing left to fire or deliver
	time.Sleep(50 * time.Millisecond)

	fires := 0
	for _, op := range r.ops() {
		if op == fsm.OpFireAlarm {
			fires++
		}
	}
	sess, _ := r.f.Get("s")
	mu.Lock()
	defer mu.Unlock()
	if fires != 1 || posts.Load() != 2 || keys[0] != keys[1] || keys[0] != IdempotencyKey("s", "ping", sess.FiredAlarms()[0].Version) {
		t.Fatalf("%d fires, %d posts, keys %v", fires, posts.Load(), keys)
	}
	if got.Alarm != "ping" || string(got.Payload) != `{"a":1}` || len(sess.Alarms()) != 1 || sess.Alarms()[0].Name != "later" {
		t.Fatalf("delivery %+v, pending %v", got, sess.Alarms())
	}
}

func inFlight(s *Scheduler) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inFlight) > 0
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
