package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A stream without a position starts with a snapshot, then carries every
// change in version order: each appended message (a batch as one event per
// message), the fields after a change, a delete, and a session written
// again; each event's id is the session version after it.
func TestChangeStreamCarriesEveryChangeInOrder(t *testing.T) {
	n := startNode(t)
	n.appendMsg("live", "m1", "first")
	s := openStream(t, n.url+sessionPath("live", "/events"))
	snap := s.expect(t, "snapshot")
	var doc sessionDoc
	if err := json.Unmarshal([]byte(snap.Data), &doc); err != nil || len(doc.Messages) != 1 || snap.ID != fmt.Sprint(doc.Version) {
		t.Fatalf("snapshot %+v (%v)", snap, err)
	}

	wantStatus(t, n.do(http.MethodPost, sessionPath("live", "/messages"),
		map[string]any{"messages": []any{msg("m2", "user", "a"), msg("m3", "assistant", "b")}}), http.StatusCreated)
	batch1, batch2 := s.expect(t, "message"), s.expect(t, "message")
	if !strings.HasSuffix(batch1.ID, ":2") || strings.Contains(batch2.ID, ":") || !strings.HasPrefix(batch1.ID, batch2.ID+":") {
		t.Fatalf("batch ids %q, %q: want VERSION:2 then VERSION", batch1.ID, batch2.ID)
	}
	var m struct {
		Seq     uint64
		ID      string
		Version uint64
	}
	if json.Unmarshal([]byte(batch2.Data), &m) != nil || m.Seq != 3 || m.ID != "m3" || batch2.ID != fmt.Sprint(m.Version) {
		t.Fatalf("message event %+v", batch2)
	}
	wantStatus(t, n.do(http.MethodPut, sessionPath("live"), `{"pendingMatch":{"with":"bob"}}`), http.StatusOK)
	f := s.expect(t, "fields")
	if !strings.Contains(f.Data, `"pendingMatch":{"with":"bob"}`) {
		t.Fatalf("fields event %+v", f)
	}
	wantStatus(t, n.do(http.MethodDelete, sessionPath("live"), nil), http.StatusNoContent)
	s.expect(t, "deleted")
	n.appendMsg("live", "m9", "again")
	again := s.expect(t, "message")
	if !strings.Contains(again.Data, `"seq":1`) {
		t.Fatalf("message of the new session %+v", again)
	}
	ids := []string{snap.ID, batch1.ID, batch2.ID, f.ID, again.ID}
	for i := 1; i < len(ids); i++ {
		if version(ids[i]) <= version(ids[i-1]) && !strings.Contains(ids[i-1], ":") {
			t.Fatalf("event ids do not grow: %v", ids)
		}
	}
}

func version(id string) uint64 {
	var v uint64
	fmt.Sscan(strings.SplitN(id, ":", 2)[0], &v)
	return v
}

// A client that reconnects with Last-Event-ID (or ?after=) gets exactly the
// changes after it, even from inside a batch, and nothing twice.
func TestChangeStreamResumesExactlyAfterTheLastEventSeen(t *testing.T) {
	n := startNode(t)
	n.appendMsg("r", "m1", "one")
	wantStatus(t, n.do(http.MethodPost, sessionPath("r", "/messages"),
		map[string]any{"messages": []any{msg("m2", "user", "a"), msg("m3", "user", "b"), msg("m4", "user", "c")}}), http.StatusCreated)
	wantStatus(t, n.do(http.MethodPatch, sessionPath("r"), `{"bookingInfo":{"n":1}}`), http.StatusOK)
	n.appendMsg("r", "m5", "five")

	all := openStream(t, n.url+sessionPath("r", "/events"), "Last-Event-ID", "0")
	var seen []sseEvent
	for range 6 { // m1..m5 and the fields
		ev, _ := all.next(t, 10*time.Second)
		seen = append(seen, ev)
	}
	for cut := range seen {
		for _, how := range []string{"header", "query"} {
			var s *sseStream
			if how == "header" {
				s = openStream(t, n.url+sessionPath("r", "/events"), "Last-Event-ID", seen[cut].ID)
			} else {
				s = openStream(t, n.url+sessionPath("r", "/events")+"?after="+seen[cut].ID)
			}
			for _, want := range seen[cut+1:] {
				if got, _ := s.next(t, 10*time.Second); got != want {
					t.Fatalf("resumed after %q by %s: got %+v, want %+v", seen[cut].ID, how, got, want)
				}
			}
			n.appendMsg("r", fmt.Sprintf("x-%d-%s", cut, how), "more") // the next event is this one, not a repeat
			got := s.expect(t, "message")
			if !strings.Contains(got.Data, fmt.Sprintf(`"id":"x-%d-%s"`, cut, how)) {
				t.Fatalf("resumed after %q: an old event came again: %+v", seen[cut].ID, got)
			}
			s.close()
			seen = append(seen, got) // later cuts expect it too
			all.expect(t, "message")
		}
	}
	for _, bad := range []string{"x", "1:0", "1:x", "-1"} {
		wantError(t, n.get(sessionPath("r", "/events")+"?after="+bad), http.StatusBadRequest, "invalid_position")
	}
}

// CloseStreams (drain, shutdown) ends every stream with a resume event and
// refuses new ones.
func TestClosingStreamsTellsReadersToResume(t *testing.T) {
	n := startNode(t)
	s := openStream(t, n.url+sessionPath("c", "/events"))
	if snap := s.expect(t, "snapshot"); snap.Data != "null" {
		t.Fatalf("snapshot of a missing session = %+v", snap)
	}
	n.api.CloseStreams()
	s.expect(t, "resume")
	if _, ok := s.next(t, 10*time.Second); ok {
		t.Fatal("the stream went on after its resume event")
	}
	wantError(t, n.get(sessionPath("c", "/events")), http.StatusServiceUnavailable, "shutting_down")
}

// A blocking read answers as soon as a message after ?after= exists, or
// with what there is when ?wait= runs out; If-None-Match with the current
// ETag is 304.
func TestBlockingReadsAndConditionalGets(t *testing.T) {
	n := startNode(t)
	n.appendMsg("b", "m1", "one")
	got := make(chan *response, 1)
	go func() {
		r, err := n.tryDo(http.MethodGet, sessionPath("b", "/messages")+"?after=1&wait=30s", nil)
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case r := <-got:
		t.Fatalf("a blocking read answered before anything was appended: %v", r)
	default:
	}
	n.appendMsg("b", "m2", "two")
	select {
	case r := <-got:
		var page struct{ Messages []struct{ ID string } }
		decode(t, r, &page)
		if r.Status != http.StatusOK || len(page.Messages) != 1 || page.Messages[0].ID != "m2" {
			t.Fatalf("blocking read = %v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the blocking read did not answer after the append")
	}
	r := n.get(sessionPath("b", "/messages") + "?after=2&wait=200ms")
	var page struct{ Messages []any }
	decode(t, r, &page)
	if r.Status != http.StatusOK || len(page.Messages) != 0 {
		t.Fatalf("blocking read at its deadline = %v", r)
	}
	wantError(t, n.get(sessionPath("b", "/messages")+"?wait=2h"), http.StatusBadRequest, "invalid_wait")
	wantError(t, n.get(sessionPath("nobody", "/messages")+"?wait=100ms"), http.StatusNotFound, "session_not_found")

	full := n.get(sessionPath("b"))
	if r := n.get(sessionPath("b"), "If-None-Match", full.ETag()); r.Status != http.StatusNotModified || len(r.Body) != 0 || r.ETag() != full.ETag() {
		t.Fatalf("If-None-Match with the current ETag = %v", r)
	}
	if r := n.get(sessionPath("b"), "If-None-Match", `"1", W/`+full.ETag()); r.Status != http.StatusNotModified {
		t.Fatalf("If-None-Match with a list holding the weak ETag = %v", r)
	}
	if r := n.get(sessionPath("b"), "If-None-Match", `"1"`); r.Status != http.StatusOK {
		t.Fatalf("If-None-Match with an old ETag = %v", r)
	}
}

// A reader resuming far behind gets its whole backlog, in bounded batches
// that never split an append, every message once and in order.
func TestChangeStreamDeliversALongBacklogInOrder(t *testing.T) {
	n := startNode(t)
	const batches, per = 13, 97 // 1261 messages, more than two rounds' worth
	for b := range batches {
		var msgs []any
		for i := range per {
			msgs = append(msgs, msg(fmt.Sprintf("b%d-%d", b, i), "user", "x"))
		}
		wantStatus(t, n.do(http.MethodPost, sessionPath("long", "/messages"), map[string]any{"messages": msgs}), http.StatusCreated)
		if b == 6 {
			wantStatus(t, n.do(http.MethodPut, sessionPath("long"), `{"k":1}`), http.StatusOK)
		}
	}
	s := openStream(t, n.url+sessionPath("long", "/events"), "Last-Event-ID", "0")
	seq, fields := 0, 0
	for seq < batches*per {
		ev, ok := s.next(t, 10*time.Second)
		if !ok {
			t.Fatalf("the stream ended after %d messages", seq)
		}
		switch ev.Event {
		case "fields":
			fields++
			if seq != 7*per {
				t.Fatalf("the fields event came after %d messages, want %d", seq, 7*per)
			}
		case "message":
			seq++
			if !strings.Contains(ev.Data, fmt.Sprintf(`"seq":%d,`, seq)) {
				t.Fatalf("message %d: %s", seq, ev.Data)
			}
		default:
			t.Fatalf("unexpected event %+v", ev)
		}
	}
	if fields != 1 {
		t.Fatalf("%d fields events, want 1", fields)
	}
}

// A reader that saw a session absent at version v and resumes after v,
// when the session was first written at v+1, gets that write first: no
// deletion lies after its position, so there is none to report (a
// "deleted" event would repeat the id v it already has).
func TestChangeStreamResumedBeforeACreationReportsNoDeletion(t *testing.T) {
	n := startNode(t)
	s := openStream(t, n.url+sessionPath("late", "/events"))
	absent, _ := s.next(t, 10*time.Second)
	s.close()
	n.appendMsg("late", "m1", "first")
	s = openStream(t, n.url+sessionPath("late", "/events"), "Last-Event-ID", absent.ID)
	got, _ := s.next(t, 10*time.Second)
	if got.Event != "message" || version(got.ID) <= version(absent.ID) {
		t.Fatalf("after %+v, resumed at %q: got %+v, want the message after it", absent, absent.ID, got)
	}
}
