package check

// What a change-stream reader checks. A reader follows one session's
// change stream (GET /api/chat/session/{id}/events) from a snapshot,
// across reconnections to any node with Last-Event-ID, and every event it
// receives goes through a streamFollow: the seqs the stream delivers (the
// messages of the first snapshot, then one message event each) must be
// 1, 2, 3, … with none skipped and none repeated, and event ids must only
// grow. At the end of the run each delivered message is compared with the
// session's final state, and every acknowledged append the reader was
// bound to see must have been delivered at its seq (see coverage).

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond/internal/sse"
)

// StreamResult is what the change-stream readers checked and found.
type StreamResult struct {
	Readers  int `json:"readers"`  // concurrent readers; 0: streams were not followed
	Sessions int `json:"sessions"` // sessions followed
	Events   int `json:"events"`   // events received and checked, resume events included
	Messages int `json:"messages"` // messages delivered (message events and the messages of snapshots)
	// Acked counts the acknowledged appended messages the readers were
	// bound to see (see coverage), each of which was looked for.
	Acked      int      `json:"acked"`
	Gaps       int      `json:"gaps"`       // jumps in the seqs delivered: messages skipped
	Duplicates int      `json:"duplicates"` // message events of a seq already delivered
	Mismatches int      `json:"mismatches"` // messages delivered unlike the final state at their seq
	Missed     int      `json:"missed"`     // acknowledged messages a reader was bound to see and never got
	Errors     int      `json:"errors"`     // malformed events, event ids going back, streams refused for good
	Reconnects int      `json:"reconnects"` // streams reopened with Last-Event-ID after one ended
	Resumes    int      `json:"resumes"`    // resume events: the server ended a stream
	Refused    int      `json:"refused"`    // attempts to open a stream that failed or were refused
	Deleted    int      `json:"deleted"`    // follows ended by a deleted event
	Unfinished int      `json:"unfinished"` // follows still behind when the readers had to stop
	Examples   Examples `json:"examples,omitempty"`
}

// streamMsg is a message as a change stream delivered it.
type streamMsg struct {
	Seq     uint64 `json:"seq"`
	ID      string `json:"id"`
	Role    string `json:"role"`
	Content string `json:"content"`
	Version uint64 `json:"version"`
}

// eventPos is an event id: a session version and, for a message that is
// not the last of its batch, its seq (0: the whole version).
type eventPos struct{ version, seq uint64 }

func parseEventPos(s string) (eventPos, bool) {
	v, q, batch := strings.Cut(s, ":")
	version, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return eventPos{}, false
	}
	p := eventPos{version: version}
	if batch {
		if p.seq, err = strconv.ParseUint(q, 10, 64); err != nil || p.seq == 0 {
			return eventPos{}, false
		}
	}
	return p, true
}

// before reports whether p comes before q: within a version, the seqs of
// a batch come before the version as a whole.
func (p eventPos) before(q eventPos) bool {
	if p.version != q.version {
		return p.version < q.version
	}
	ps, qs := p.seq, q.seq
	if ps == 0 {
		ps = ^uint64(0)
	}
	if qs == 0 {
		qs = ^uint64(0)
	}
	return ps < qs
}

// Why a follow stopped.
const (
	stopCaughtUp  = "caught up" // delivered every seq it was bound to see
	stopDeadline  = "deadline"  // still behind when the readers had to stop
	stopDeleted   = "deleted"   // the session incarnation ended
	stopRefused   = "refused"   // a node refused the stream for good (4xx)
	stopCancelled = "cancelled" // the run was interrupted
)

// streamFollow is one reader's record of one session: what the stream
// delivered, and what is already wrong with it. Safe for concurrent use:
// the reader feeds it, and a monitor asks how far it got.
type streamFollow struct {
	session string

	mu        sync.Mutex
	delivered map[uint64]streamMsg // seq → the message as first delivered
	next      uint64               // the seq the stream should deliver next
	last      eventPos             // the id of the last event with one
	lastID    string               // as sent; "" before the first
	events    int
	messages  int
	resumes   int
	conns     int          // streams opened
	refused   int          // attempts that opened no stream
	res       StreamResult // the problems found as events came, with examples
	from, to  int64        // history times the follow began and stopped
	stop      string       // why it stopped; "" while it goes on

	// Coverage: the rule for which acknowledged appends a follow must
	// have delivered, made so that it cannot fail a correct stream.
	//
	// A follow is bound to see an acknowledged append when the append
	// returned strictly before coverUntil (history time). The reader sets
	// coverUntil once the session has retired and no operation on it is in
	// flight (or at the end of the run, when the workload has stopped),
	// together with target, the highest seq acknowledged by then. The
	// workload takes an append's return time and raises that highest seq
	// under the lock under which coverUntil is read from the same clock,
	// so every append that returned before coverUntil has a seq of at most
	// target (strictly before: a reading equal to coverUntil may have been
	// taken just after it). The reader then follows on until the stream
	// has delivered seq target, and only then stops ("caught up"); seqs
	// come in order, so by then it has had every one of those appends.
	// A follow that stops for another reason is bound to nothing (deleted:
	// the incarnation ended; refused, cancelled: it never had the chance),
	// except at the end of the run: a reader still behind once the cluster
	// was healthy again and StreamCatchUp ran out keeps its coverage, and
	// every append it was bound to see and did not get counts as missed.
	// Without a coverUntil a follow is bound to nothing; what it delivered
	// is still checked seq by seq and against the final state.
	covered    bool
	coverUntil int64
	target     uint64
}

func newStreamFollow(session string, from int64) *streamFollow {
	return &streamFollow{session: session, delivered: map[uint64]streamMsg{}, next: 1, from: from}
}

// position is the Last-Event-ID to resume with; "" before the first event.
func (f *streamFollow) position() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastID
}

func (f *streamFollow) problem(kind, format string, args ...any) {
	f.res.problem(kind, f.session, format, args...)
}

// observe checks one event and records it. It reports whether the follow
// is over: a deleted event ends the check of the session incarnation.
func (f *streamFollow) observe(ev sse.Event) (over bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events++
	if ev.Event == "resume" {
		f.resumes++
		return false
	}
	pos, ok := parseEventPos(ev.ID)
	if !ok {
		f.problem("stream_errors", "%s event with id %q, which is no event id", ev.Event, ev.ID)
		return false
	}
	first := f.lastID == ""
	if !first && !f.last.before(pos) {
		f.problem("stream_errors", "%s event %s came after event %s: event ids must grow", ev.Event, ev.ID, f.lastID)
	}
	f.last, f.lastID = pos, ev.ID
	if first && ev.Event != "snapshot" {
		f.problem("stream_errors", "the first event, %s %s, is not a snapshot (the stream was opened without a position)", ev.Event, ev.ID)
	}
	switch ev.Event {
	case "snapshot":
		if strings.TrimSpace(ev.Data) == "null" {
			if first {
				return false // not written yet
			}
			f.stop = stopDeleted
			return true
		}
		var doc struct {
			Messages []streamMsg `json:"messages"`
		}
		if err := json.Unmarshal([]byte(ev.Data), &doc); err != nil {
			f.problem("stream_errors", "snapshot %s: %v", ev.ID, err)
			return false
		}
		f.snapshot(ev.ID, doc.Messages)
	case "message":
		var m streamMsg
		if err := json.Unmarshal([]byte(ev.Data), &m); err != nil || m.Seq == 0 {
			f.problem("stream_errors", "message %s: unreadable (%v): %.200s", ev.ID, err, ev.Data)
			return false
		}
		if m.Version != pos.version || pos.seq != 0 && pos.seq != m.Seq {
			f.problem("stream_mismatches", "message event %s carries seq %d, version %d", ev.ID, m.Seq, m.Version)
		}
		f.deliver(ev.ID, m)
	case "fields":
	case "deleted":
		f.stop = stopDeleted
		return true
	default:
		f.problem("stream_errors", "unknown event %q (id %s)", ev.Event, ev.ID)
	}
	return false
}

// deliver takes one message event.
func (f *streamFollow) deliver(id string, m streamMsg) {
	switch {
	case m.Seq < f.next:
		f.problem("stream_duplicates", "message event %s delivers seq %d (%s) again", id, m.Seq, m.ID)
		return
	case m.Seq > f.next:
		f.problem("stream_gaps", "message event %s delivers seq %d, but seqs from %d were never delivered", id, m.Seq, f.next)
	}
	f.delivered[m.Seq] = m
	f.next = m.Seq + 1
	f.messages++
}

// snapshot takes the messages of a snapshot event: the whole session. The
// first snapshot delivers them; a later one (the server sends one when it
// no longer knows the changes after the position in detail) repeats the
// messages delivered so far, which must be unchanged, and delivers the
// rest.
func (f *streamFollow) snapshot(id string, msgs []streamMsg) {
	var prev uint64
	for _, m := range msgs {
		if m.Seq <= prev {
			f.problem("stream_duplicates", "snapshot %s holds seq %d after seq %d", id, m.Seq, prev)
			continue
		}
		prev = m.Seq
		if m.Seq < f.next {
			if d, ok := f.delivered[m.Seq]; ok && (d.ID != m.ID || d.Role != m.Role || d.Content != m.Content) {
				f.problem("stream_mismatches", "snapshot %s holds %s at seq %d, where the stream delivered %s", id, m.ID, m.Seq, d.ID)
			}
			continue
		}
		if m.Seq > f.next {
			f.problem("stream_gaps", "snapshot %s holds seq %d, but seqs from %d are not in it", id, m.Seq, f.next)
		}
		f.delivered[m.Seq] = m
		f.next = m.Seq + 1
		f.messages++
	}
	if prev+1 < f.next {
		f.problem("stream_mismatches", "snapshot %s ends at seq %d, but the stream delivered seqs up to %d", id, prev, f.next-1)
	}
}

// opened and failed count connection attempts.
func (f *streamFollow) opened() {
	f.mu.Lock()
	f.conns++
	f.mu.Unlock()
}

func (f *streamFollow) failed() {
	f.mu.Lock()
	f.refused++
	f.mu.Unlock()
}

// refuse ends a follow that a node refused in a way no retry cures.
func (f *streamFollow) refuse(node, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refused++
	f.problem("stream_errors", "%s refused the stream: %.300s", node, why)
	if f.stop == "" {
		f.stop = stopRefused
	}
}

// cover binds the follow to the appends acknowledged by until, whose
// seqs are at most target; see coverUntil. Once only.
func (f *streamFollow) cover(until int64, target uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.covered {
		f.covered, f.coverUntil, f.target = true, until, target
	}
}

// caughtUp reports whether the follow is bound and has delivered every
// seq it is bound to see.
func (f *streamFollow) caughtUp() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.covered && f.next > f.target
}

func (f *streamFollow) hasCoverage() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.covered
}

// finish records why the follow stopped, unless it already has (a deleted
// event), at history time now; it returns the reason recorded and, for a
// follow stopped behind, how far it got.
func (f *streamFollow) finish(why string, now int64) (stop string, delivered, target uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stop == "" {
		f.stop = why
	}
	f.to = now
	return f.stop, f.next - 1, f.target
}

// ackedMsg is an acknowledged appended message: its seq, and when the
// append returned (history time).
type ackedMsg struct {
	id  string
	seq uint64
	at  int64
}

// ackedMessages is every acknowledged appended message of each session,
// once per id (the earliest acknowledgement).
func ackedMessages(ops []Op) map[string][]ackedMsg {
	out := map[string][]ackedMsg{}
	index := map[string]int{} // session + "\x00" + id → index in out[session]
	for _, op := range ops {
		if op.Input.Kind != KindAppend || op.Output.Status != StatusOK || op.Client < 0 || len(op.Output.Seqs) != len(op.Input.IDs) {
			continue
		}
		s := op.Input.Session
		for i, id := range op.Input.IDs {
			key := s + "\x00" + id
			if j, ok := index[key]; ok {
				if op.Return < out[s][j].at {
					out[s][j].at = op.Return
				}
				continue
			}
			index[key] = len(out[s])
			out[s] = append(out[s], ackedMsg{id: id, seq: op.Output.Seqs[i], at: op.Return})
		}
	}
	return out
}

// verify adds the follow to res: its counts, what it found as it went,
// and the comparison of what it delivered with the final state of the
// session (final; read is false when no final read succeeded, which the
// durability check reports) and with the acknowledged appends it was
// bound to see.
func (f *streamFollow) verify(res *StreamResult, final *sessionDoc, read bool, acked []ackedMsg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	res.Sessions++
	res.Events += f.events
	res.Messages += f.messages
	res.Resumes += f.resumes
	res.Refused += f.refused
	if f.conns > 1 {
		res.Reconnects += f.conns - 1
	}
	res.add(f.res)
	if f.stop == stopDeleted {
		// The incarnation followed ended; the final state may be another.
		res.Deleted++
		return
	}
	seqs := make([]uint64, 0, len(f.delivered))
	for seq := range f.delivered {
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	wrong := map[uint64]bool{}
	if read {
		for _, seq := range seqs {
			d := f.delivered[seq]
			var want *wireMessage
			if final != nil && seq <= uint64(len(final.Msgs)) && final.Msgs[seq-1].Seq == seq {
				want = &final.Msgs[seq-1]
			}
			switch {
			case want == nil:
				wrong[seq] = true
				res.problem("stream_mismatches", f.session, "the stream delivered %s at seq %d, which the final state does not hold", d.ID, seq)
			case want.ID != d.ID || want.Role != d.Role || want.Content != d.Content:
				wrong[seq] = true
				res.problem("stream_mismatches", f.session, "the stream delivered %s (%s, %q) at seq %d, the final state holds %s (%s, %q)",
					d.ID, d.Role, d.Content, seq, want.ID, want.Role, want.Content)
			}
		}
	}
	if !f.covered || f.stop != stopCaughtUp && f.stop != stopDeadline {
		return
	}
	for _, a := range acked {
		if a.at >= f.coverUntil {
			continue
		}
		res.Acked++
		d, ok := f.delivered[a.seq]
		switch {
		case !ok:
			res.problem("stream_missed", f.session, "message %s, acknowledged at seq %d at %v, never came on the stream, followed from %v to %v (%s) up to seq %d",
				a.id, a.seq, ms(a.at), ms(f.from), ms(f.to), f.stop, f.next-1)
		case d.ID != a.id && !wrong[a.seq]:
			wrong[a.seq] = true
			res.problem("stream_mismatches", f.session, "the stream delivered %s at seq %d, where %s was acknowledged", d.ID, a.seq, a.id)
		}
	}
	if f.stop == stopDeadline && f.next <= f.target {
		res.Unfinished++
	}
}

func ms(t int64) time.Duration { return time.Duration(t).Round(time.Millisecond) }

// problem counts one problem of a kind (its name in the report) with an
// example.
func (r *StreamResult) problem(kind, session, format string, args ...any) {
	switch kind {
	case "stream_gaps":
		r.Gaps++
	case "stream_duplicates":
		r.Duplicates++
	case "stream_mismatches":
		r.Mismatches++
	case "stream_missed":
		r.Missed++
	case "stream_errors":
		r.Errors++
	}
	r.Examples.add(kind, "session %s: %s", session, fmt.Sprintf(format, args...))
}

// add adds the problems o found.
func (r *StreamResult) add(o StreamResult) {
	r.Gaps += o.Gaps
	r.Duplicates += o.Duplicates
	r.Mismatches += o.Mismatches
	r.Missed += o.Missed
	r.Errors += o.Errors
	r.Examples.merge(o.Examples)
}
