package check

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sse"
)

// Synthetic change-stream events of session "s".
func snapshotEv(id string, seqs ...uint64) sse.Event {
	msgs := make([]streamMsg, len(seqs))
	for i, q := range seqs {
		msgs[i] = msgAt(q)
	}
	b, _ := json.Marshal(map[string]any{"id": "s", "version": 1, "messages": msgs})
	return sse.Event{ID: id, Event: "snapshot", Data: string(b)}
}

func msgAt(seq uint64) streamMsg {
	id := fmt.Sprint("m", seq)
	return streamMsg{Seq: seq, ID: id, Role: "user", Content: "message " + id}
}

func messageEv(id string, m streamMsg) sse.Event {
	p, _ := parseEventPos(id)
	m.Version = p.version
	b, _ := json.Marshal(m)
	return sse.Event{ID: id, Event: "message", Data: string(b)}
}

// msgEv is the message at seq in an event of id.
func msgEv(id string, seq uint64) sse.Event { return messageEv(id, msgAt(seq)) }

// finalDoc is a final state holding m1..mn.
func finalDoc(n int) *sessionDoc {
	d := &sessionDoc{}
	for i := 1; i <= n; i++ {
		m := msgAt(uint64(i))
		d.Msgs = append(d.Msgs, wireMessage{Seq: m.Seq, ID: m.ID, Role: m.Role, Content: m.Content})
		d.IDs = append(d.IDs, m.ID)
		d.Seqs = append(d.Seqs, m.Seq)
	}
	return d
}

// acks acknowledges m<seq> at history time seq (ns), for seqs.
func acks(seqs ...uint64) []ackedMsg {
	var out []ackedMsg
	for _, q := range seqs {
		out = append(out, ackedMsg{id: fmt.Sprint("m", q), seq: q, at: int64(q)})
	}
	return out
}

// followOf feeds events to a follow, which then stops for why, bound to
// what was acknowledged before coverUntil (none when coverUntil is 0).
func followOf(events []sse.Event, coverUntil int64, target uint64, why string) *streamFollow {
	f := newStreamFollow("s", 0)
	f.opened()
	for _, ev := range events {
		if ev.Event == "" { // a reconnection
			f.opened()
			continue
		}
		if f.observe(ev) {
			break
		}
	}
	if coverUntil > 0 {
		f.cover(coverUntil, target)
	}
	f.finish(why, 100)
	return f
}

var reconnect = sse.Event{}

func TestStreamCheckerFindsWhatIsWrong(t *testing.T) {
	clean := []sse.Event{
		snapshotEv("10", 1, 2),
		msgEv("12:3", 3), msgEv("12", 4), // one batch
		{ID: "13", Event: "fields", Data: `{"fields":{"a":"x"},"version":13}`},
		{Event: "resume", Data: `{"reason":"draining"}`},
		reconnect,
		msgEv("15", 5),
		reconnect, // cut inside a batch, resumed after 17:6
		msgEv("17:6", 6),
		reconnect,
		msgEv("17", 7),
	}
	for _, tc := range []struct {
		name    string
		events  []sse.Event
		final   *sessionDoc
		acked   []ackedMsg
		cover   int64 // coverUntil; 0: none
		target  uint64
		stop    string
		want    StreamResult // the counts compared: problems, Acked, Reconnects, Deleted, Unfinished
		example string       // in the examples
	}{
		{name: "clean, resumed across reconnections", events: clean, final: finalDoc(7), acked: acks(1, 2, 3, 4, 5, 6, 7), cover: 8, target: 7, stop: stopCaughtUp,
			want: StreamResult{Acked: 7, Reconnects: 3}},
		{name: "appends acknowledged after coverUntil are not required", events: clean[:3], final: finalDoc(7), acked: acks(1, 2, 3, 4, 5, 6, 7), cover: 4, target: 3, stop: stopCaughtUp,
			want: StreamResult{Acked: 3}},
		{name: "gap", events: []sse.Event{snapshotEv("10", 1, 2), msgEv("12", 4), msgEv("13", 5)}, final: finalDoc(5), stop: stopCancelled,
			want: StreamResult{Gaps: 1}, example: "seqs from 3 were never delivered"},
		{name: "gap inside the first snapshot", events: []sse.Event{snapshotEv("10", 1, 3)}, final: finalDoc(3), stop: stopCancelled,
			want: StreamResult{Gaps: 1}, example: "seqs from 2 are not in it"},
		{name: "duplicate after a reconnection", events: []sse.Event{snapshotEv("10", 1), msgEv("12", 2), reconnect, msgEv("12", 2), msgEv("13", 3)}, final: finalDoc(3), stop: stopCancelled,
			want: StreamResult{Duplicates: 1, Errors: 1, Reconnects: 1}, example: "delivers seq 2 (m2) again"},
		{name: "mismatch with the final state", final: finalDoc(2), stop: stopCancelled,
			events: []sse.Event{snapshotEv("10", 1), messageEv("12", streamMsg{Seq: 2, ID: "m2", Role: "user", Content: "something else"})},
			want:   StreamResult{Mismatches: 1}, example: `final state holds m2 (user, "message m2")`},
		{name: "a message the final state does not hold", events: []sse.Event{snapshotEv("10", 1), msgEv("12", 2)}, final: finalDoc(1), stop: stopCancelled,
			want: StreamResult{Mismatches: 1}, example: "which the final state does not hold"},
		{name: "event id that disagrees with its message", events: []sse.Event{snapshotEv("10", 1), messageEv("12:3", msgAt(2))}, final: finalDoc(2), stop: stopCancelled,
			want: StreamResult{Mismatches: 1}, example: "carries seq 2"},
		{name: "acknowledged append never delivered, behind at the deadline", events: clean[:2], final: finalDoc(7), acked: acks(1, 2, 3, 4, 5), cover: 6, target: 5, stop: stopDeadline,
			want: StreamResult{Acked: 5, Missed: 2, Unfinished: 1}, example: "message m4, acknowledged at seq 4"},
		{name: "no coverage for a follow the run cut short", events: clean[:3], final: finalDoc(7), acked: acks(1, 2, 3, 4, 5), cover: 6, target: 5, stop: stopCancelled,
			want: StreamResult{}},
		{name: "a deleted event ends the incarnation's check", events: []sse.Event{snapshotEv("10", 1), msgEv("12", 2), {ID: "13", Event: "deleted", Data: `{"id":"s","version":13}`}, msgEv("20", 1)},
			final: nil, acked: acks(1, 2), cover: 30, target: 2, stop: stopCaughtUp, want: StreamResult{Deleted: 1}},
		{name: "event ids going back", events: []sse.Event{snapshotEv("10", 1), msgEv("12", 2), {ID: "11", Event: "fields", Data: "{}"}}, final: finalDoc(2), stop: stopCancelled,
			want: StreamResult{Errors: 1}, example: "event ids must grow"},
		{name: "first event not a snapshot", events: []sse.Event{msgEv("12", 1)}, final: finalDoc(1), stop: stopCancelled,
			want: StreamResult{Errors: 1}, example: "is not a snapshot"},
		{name: "a later snapshot repeats what was delivered and delivers the rest", events: []sse.Event{snapshotEv("10", 1), msgEv("12", 2), snapshotEv("15", 1, 2, 3), msgEv("16", 4)}, final: finalDoc(4), stop: stopCancelled,
			want: StreamResult{}},
		{name: "a later snapshot with fewer messages", events: []sse.Event{snapshotEv("10", 1), msgEv("12", 2), snapshotEv("15", 1)}, final: finalDoc(2), stop: stopCancelled,
			want: StreamResult{Mismatches: 1}, example: "ends at seq 1"},
		{name: "no session yet, then its first messages", events: []sse.Event{{ID: "7", Event: "snapshot", Data: "null"}, msgEv("12", 1), msgEv("13", 2)}, final: finalDoc(2), acked: acks(1, 2), cover: 3, target: 2, stop: stopCaughtUp,
			want: StreamResult{Acked: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := followOf(tc.events, tc.cover, tc.target, tc.stop)
			var res StreamResult
			f.verify(&res, tc.final, true, tc.acked)
			got := StreamResult{Gaps: res.Gaps, Duplicates: res.Duplicates, Mismatches: res.Mismatches, Missed: res.Missed, Errors: res.Errors,
				Acked: res.Acked, Reconnects: res.Reconnects, Deleted: res.Deleted, Unfinished: res.Unfinished}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %+v\nwant %+v\nexamples: %v", got, tc.want, res.Examples)
			}
			if tc.example != "" && !strings.Contains(fmt.Sprint(res.Examples), tc.example) {
				t.Errorf("no example mentions %q: %v", tc.example, res.Examples)
			}
			if res.Sessions != 1 || res.Events == 0 {
				t.Errorf("counted %d sessions, %d events", res.Sessions, res.Events)
			}
		})
	}
}

// A stream problem fails the run, with its count at the top level of the
// report and an example under the same name.
func TestStreamProblemsFailTheRun(t *testing.T) {
	f := followOf([]sse.Event{snapshotEv("10", 1), msgEv("12", 3)}, 0, 0, stopCancelled)
	r := &Report{Streams: StreamResult{Readers: 4}}
	f.verify(&r.Streams, finalDoc(3), true, nil)
	r.summarize(nil, nil, nil, -1, 0)
	if r.Pass || r.StreamGaps != 1 {
		t.Fatalf("report: pass %v, %d stream gaps", r.Pass, r.StreamGaps)
	}
	b, _ := json.Marshal(r)
	var top map[string]any
	_ = json.Unmarshal(b, &top)
	if top["stream_gaps"] != float64(1) || top["streams"].(map[string]any)["sessions"] != float64(1) {
		t.Fatalf("JSON report: stream_gaps %v, streams %v", top["stream_gaps"], top["streams"])
	}
	var text strings.Builder
	r.WriteText(&text)
	for _, want := range []string{"streams: 1 sessions followed by 4 readers", "1 gaps", "PROBLEM: 1 stream_gaps", "seqs from 2 were never delivered"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

// fakeStreams serves the change stream of one session from a script of
// events, resuming after Last-Event-ID as sessiond does. Each node serves
// at most perConn events a connection, then ends the stream (end) or
// falls silent (!end); a refusing node answers 503.
type fakeStreams struct {
	t      *testing.T
	events []sse.Event

	mu      sync.Mutex
	resumed []string // the Last-Event-ID of every request
}

func (fs *fakeStreams) node(perConn int, end, refuse bool) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/events") {
			http.NotFound(w, r)
			return
		}
		if refuse {
			http.Error(w, `{"error":{"code":"shutting_down"}}`, http.StatusServiceUnavailable)
			return
		}
		last := r.Header.Get("Last-Event-ID")
		fs.mu.Lock()
		fs.resumed = append(fs.resumed, last)
		fs.mu.Unlock()
		from := 0
		if last != "" {
			from = -1
			for i, ev := range fs.events {
				if ev.ID == last {
					from = i + 1
				}
			}
			if from < 0 {
				http.Error(w, `{"error":{"code":"invalid_position"}}`, http.StatusBadRequest)
				return
			}
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for i := from; i < len(fs.events) && i < from+perConn; i++ {
			ev := fs.events[i]
			fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", ev.ID, ev.Event, ev.Data)
			w.(http.Flusher).Flush()
		}
		if end && from+perConn < len(fs.events) {
			return
		}
		<-r.Context().Done() // silent until the reader gives up on it
	}))
}

// A reader resumes with the last event id it saw, on the next node,
// skipping a node that refuses and giving up on one that falls silent, and
// at the end it has seen every message once.
func TestStreamReaderResumesAcrossNodes(t *testing.T) {
	fs := &fakeStreams{t: t, events: []sse.Event{
		snapshotEv("10", 1, 2), msgEv("12:3", 3), msgEv("12", 4),
		{ID: "13", Event: "fields", Data: `{"fields":{},"version":13}`},
		msgEv("15", 5), msgEv("17:6", 6), msgEv("17", 7), msgEv("18", 8),
	}}
	refusing, ending, silent := fs.node(0, false, true), fs.node(2, true, false), fs.node(1, false, false)
	for _, s := range []*httptest.Server{refusing, ending, silent} {
		defer s.Close()
	}
	nodes := []Node{{"n1", refusing.URL}, {"n2", ending.URL}, {"n3", silent.URL}}

	hist := NewHistory()
	wl := DefaultWorkload()
	wl.Sessions, wl.RunID = 1, "t"
	w := NewWorkload(wl, Credentials{}, hist, func() []Node { return nodes })
	session := w.regular.newest(func(string) bool { return false })
	// Eight messages acknowledged, as the workload records them.
	for seq := uint64(1); seq <= 8; seq++ {
		w.begin(session)
		w.done(Op{Input: Input{Session: session, Kind: KindAppend, IDs: []string{fmt.Sprint("m", seq)}},
			Output: Output{Status: StatusOK, Seqs: []uint64{seq}}})
	}
	readers := newStreamReaders(1, w, hist, func() []Node { return nodes }, Credentials{}, t.Logf)
	readers.idle = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readers.start(ctx)
	time.Sleep(100 * time.Millisecond)
	readers.finish(20 * time.Second)

	res := readers.result(map[string]*sessionDoc{session: finalDoc(8)}, hist.Ops())
	if res.Sessions != 1 || res.Messages != 8 || res.Acked != 8 || res.Unfinished != 0 {
		t.Fatalf("result %+v", res)
	}
	if res.Gaps+res.Duplicates+res.Mismatches+res.Missed+res.Errors != 0 {
		t.Fatalf("problems: %+v", res)
	}
	if res.Reconnects < 3 || res.Refused == 0 {
		t.Fatalf("%d reconnects, %d refused: the reader should have moved across the nodes", res.Reconnects, res.Refused)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.resumed[0] != "" || len(fs.resumed) < 4 {
		t.Fatalf("the reader resumed with %q", fs.resumed)
	}
}
