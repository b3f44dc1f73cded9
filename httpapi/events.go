package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// The change stream of a session: GET /api/chat/session/{id}/events, as
// Server-Sent Events.
//
// Events, each with the session version after it as its id:
//
//	snapshot  the whole session (null when it does not exist), first when
//	          the client has no position, or when the changes after its
//	          position are no longer known in detail
//	message   one appended message
//	fields    all the fields after a change of fields; changes between
//	          two events are folded into the later one
//	deleted   the session was deleted (or expired)
//	alarm     one of the session's alarms fired
//	resume    the server ends the stream (drain, shutdown, replica moved
//	          away); reconnect, to any node, with Last-Event-ID
//
// The position is the last event id seen: the Last-Event-ID header that
// EventSource sends when it reconnects, or ?after=. A message of a batch
// append that is not its last carries "VERSION:SEQ", so a stream cut inside
// a batch resumes inside it. Every change after the position arrives once,
// in version order, on whichever replica the client reconnects to.
//
// A stream never holds changes for its reader: it waits for the FSM's
// signal, reads the (immutable) session and writes what is newer than its
// position, so a slow reader costs one goroutine and a socket, and writers
// never wait for it. A reader that cannot take a write for streamWriteTimeout
// is cut off.

const (
	// CodeNotCaughtUp refuses a stream whose position this replica has
	// not applied yet; another replica, or a retry, will have.
	CodeNotCaughtUp = "not_caught_up"
	// CodeInvalidPosition is a Last-Event-ID or after= that is no event id.
	CodeInvalidPosition = "invalid_position"

	// DefaultMaxStreams bounds the change streams and blocking reads one
	// node serves at once.
	DefaultMaxStreams = 10000

	streamHeartbeat    = 15 * time.Second
	streamCheck        = time.Second // how often a stream checks its replica is still here
	streamWriteTimeout = 10 * time.Second
	streamCatchUp      = 5 * time.Second // how long to wait for this replica to apply a position
)

// position is how far a client has seen a session: every change up to
// version, and of the messages at version those up to seq (0: all).
type position struct {
	version, seq uint64
	known        bool // the client gave one
}

func parsePosition(s string) (position, error) {
	if s == "" {
		return position{}, nil
	}
	v, q, batch := strings.Cut(s, ":")
	version, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return position{}, errorf(http.StatusBadRequest, CodeInvalidPosition, "position %q is not an event id (VERSION or VERSION:SEQ)", s)
	}
	p := position{version: version, known: true}
	if batch {
		if p.seq, err = strconv.ParseUint(q, 10, 64); err != nil || p.seq == 0 {
			return position{}, errorf(http.StatusBadRequest, CodeInvalidPosition, "position %q is not an event id (VERSION or VERSION:SEQ)", s)
		}
	}
	return p, nil
}

// streams counts and ends the node's change streams.
type streams struct {
	max    int
	open   atomic.Int64
	closed chan struct{}
	once   sync.Once
}

func newStreams(max int) *streams {
	if max < 1 {
		max = DefaultMaxStreams
	}
	return &streams{max: max, closed: make(chan struct{})}
}

// acquire takes a slot, or refuses when the node serves max already.
func (st *streams) acquire() (release func(), err error) {
	if st.open.Add(1) > int64(st.max) {
		st.open.Add(-1)
		return nil, unavailable(CodeOverloaded, fmt.Sprintf("this node serves %d change streams and blocking reads already", st.max))
	}
	return func() { st.open.Add(-1) }, nil
}

// CloseStreams ends every change stream with a resume event and refuses new
// ones, for a node that drains or shuts down: its clients reconnect to
// another node. Blocking reads answer at once. Safe to call more than once.
func (s *Server) CloseStreams() { s.streams.once.Do(func() { close(s.streams.closed) }) }

// OpenStreams counts the change streams and blocking reads being served.
func (s *Server) OpenStreams() int { return int(s.streams.open.Load()) }

// holdOpen lifts the server's read and write timeouts from a response that
// stays open longer than a request does; writes set their own deadlines.
func holdOpen(c echo.Context) {
	rc := http.NewResponseController(c.Response().Writer)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
}

func (s *Server) sessionEvents(c echo.Context) error {
	id, sh := scope(c)
	pos, err := parsePosition(c.Request().Header.Get("Last-Event-ID"))
	if err == nil && c.QueryParam("after") != "" {
		pos, err = parsePosition(c.QueryParam("after"))
	}
	if err != nil {
		return err
	}
	select {
	case <-s.streams.closed:
		return unavailable(CodeShuttingDown, "this node is draining or shutting down; connect to another")
	default:
	}
	release, err := s.streams.acquire()
	if err != nil {
		return err
	}
	defer release()
	ctx := c.Request().Context()
	// A linearizable read first: the stream starts from a state that
	// holds every write acknowledged before it was opened.
	state, err := s.boundedRead(ctx, sh, shard.Linearizable)
	if err != nil {
		return s.forwardIfMoved(c, sh, err)
	}
	if pos.known && state.AppliedIndex() < pos.version {
		wctx, cancel := context.WithTimeout(ctx, streamCatchUp)
		err := state.WaitApplied(wctx, pos.version)
		cancel()
		if err != nil {
			return unavailable(CodeNotCaughtUp, fmt.Sprintf("this replica has not applied version %d yet; retry, or connect to another node", pos.version))
		}
	}
	changed, cancel := state.Watch(id)
	defer cancel()

	h := c.Response().Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	c.Response().WriteHeader(http.StatusOK)
	holdOpen(c)
	w := &eventWriter{rc: http.NewResponseController(c.Response().Writer), bw: bufio.NewWriterSize(c.Response(), 32<<10)}
	// The headers go out now, not with the first event, which may be a
	// while: a node forwarding the stream gives up on a response whose
	// headers do not come.
	w.arm()
	if err := w.rc.Flush(); err != nil {
		return nil
	}

	st := &streamState{id: id, pos: pos}
	heartbeat := time.NewTicker(streamHeartbeat)
	defer heartbeat.Stop()
	check := time.NewTicker(streamCheck)
	defer check.Stop()
	for {
		w.arm()
		sess, _ := state.Get(id)
		more := st.emit(w, sess, state.AppliedIndex())
		if err := w.flush(); err != nil {
			return nil // the reader is gone or too slow: cut off
		}
		if more {
			continue // the rest of a long backlog, a bounded batch at a time
		}
		select {
		case <-changed:
		case <-heartbeat.C:
			w.arm()
			w.comment("keepalive")
		case <-check.C:
			if cl := s.cfg.Cluster; cl != nil && !cl.HasReplica(sh) {
				w.arm()
				w.resume("this node no longer holds a replica of the session's shard")
				_ = w.flush()
				return nil
			}
		case <-s.streams.closed:
			w.arm()
			w.resume("this node is draining or shutting down")
			_ = w.flush()
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// longLived lifts the server's timeouts from a route whose response stays
// open (a change stream), here and on a node that forwards it.
func longLived(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		holdOpen(c)
		return next(c)
	}
}

// streamState is what one stream has sent.
type streamState struct {
	id  string
	pos position
	// gone is set once the stream has told its reader the session does
	// not exist (a snapshot of null, or a deleted event).
	gone bool
}

// streamBatch bounds the messages one round writes, so that a reader
// resuming far behind does not make the server hold its whole backlog.
const streamBatch = 512

// emit writes the changes of sess after the stream's position, at most
// about streamBatch messages of them, and moves the position past what it
// wrote; more reports that changes remain. applied is the replica's applied
// index, the version of events that have none of their own (a deletion).
func (st *streamState) emit(w *eventWriter, sess *fsm.Session, applied uint64) (more bool) {
	switch {
	case !st.pos.known:
		st.snapshot(w, sess, applied)
		return false
	case sess == nil:
		if !st.gone && applied > st.pos.version {
			st.gone = true
			st.pos = position{version: applied, known: true}
			w.event("deleted", st.pos.String(), []byte(fmt.Sprintf(`{"id":%s,"version":%d}`, jsonString(st.id), applied)))
		}
		return false
	case sess.CreatedVersion() == 0 && sess.Version > st.pos.version:
		// Restored from a snapshot that kept no versions: what changed
		// after the position is unknown in detail.
		st.snapshot(w, sess, applied)
		return false
	case sess.CreatedVersion() > st.pos.version+1 && !st.gone && st.pos.version > 0:
		// Deleted and written again since the position: say so first.
		// (Created right after the position, the session was absent at
		// it, so no deletion lies after it: a reader that resumes there
		// saw it absent, and a deleted event would repeat its id.)
		st.pos = position{version: sess.CreatedVersion() - 1, known: true}
		w.event("deleted", st.pos.String(), []byte(fmt.Sprintf(`{"id":%s,"version":%d}`, jsonString(st.id), st.pos.version)))
	}
	if sess.FiredForgottenUpTo() > st.pos.version {
		// Fires after the position are no longer all remembered.
		st.snapshot(w, sess, applied)
		return false
	}
	st.gone = false
	// Every change after the position, in version order: messages (a batch
	// shares a version, in seq order), the fields, fired alarms.
	var pending []streamEvent
	// Messages are looked at from the newest back, one by one: a long
	// session is not copied for the few messages after the position.
	count := sess.MessageCount()
	version := func(i int) uint64 { return sess.Message(uint64(i + 1)).Version }
	first := count
	for first > 0 && (version(first-1) > st.pos.version ||
		(version(first-1) == st.pos.version && st.pos.seq > 0 && uint64(first) > st.pos.seq)) {
		first--
	}
	// Take a bounded batch, never splitting the messages of one version;
	// the fields and fires go with it up to its last version.
	last, limit := count, uint64(0)
	if last-first > streamBatch {
		last = first + streamBatch
		for last < count && version(last) == version(last-1) {
			last++
		}
		limit, more = version(last-1), true
	}
	within := func(v uint64) bool { return limit == 0 || v <= limit }
	msgs := sess.MessagesAfter(uint64(first), last-first) // seqs first+1 … last
	for i := range msgs {
		m := &msgs[i]
		id := position{version: m.Version, known: true}
		// The batch never splits a version, so the next of the same
		// version, if any, is in it.
		if i+1 < len(msgs) && msgs[i+1].Version == m.Version {
			id.seq = m.Seq // not the last of its batch
		}
		b, _ := json.Marshal(messageEvent{Message: *m, Version: m.Version})
		pending = append(pending, streamEvent{pos: id, seq: m.Seq, kind: "message", data: b})
	}
	if fv := sess.FieldsVersion(); fv > st.pos.version && within(fv) {
		pending = append(pending, streamEvent{pos: position{version: fv, known: true}, kind: "fields",
			data: []byte(fmt.Sprintf(`{"fields":%s,"version":%d}`, strings.TrimSpace(string(fieldsDocument(sess))), fv))})
	}
	for _, fa := range sess.FiredAlarms() {
		if fa.Version > st.pos.version && within(fa.Version) {
			b, _ := json.Marshal(alarmEvent{Name: fa.Name, At: fa.At, FiredAt: fa.FiredAt, Version: fa.Version, Payload: fa.Payload})
			pending = append(pending, streamEvent{pos: position{version: fa.Version, known: true}, kind: "alarm", data: b})
		}
	}
	sort.SliceStable(pending, func(i, j int) bool {
		if pending[i].pos.version != pending[j].pos.version {
			return pending[i].pos.version < pending[j].pos.version
		}
		return pending[i].seq < pending[j].seq
	})
	for _, ev := range pending {
		w.event(ev.kind, ev.pos.String(), ev.data)
		st.pos = ev.pos
	}
	return more
}

// streamEvent is one change waiting to be written, at its position.
type streamEvent struct {
	pos  position
	seq  uint64 // orders the messages of one batch
	kind string
	data []byte
}

type alarmEvent struct {
	Name    string          `json:"name"`
	At      int64           `json:"at"`
	FiredAt int64           `json:"firedAt"`
	Version uint64          `json:"version"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

type messageEvent struct {
	fsm.Message
	Version uint64 `json:"version"`
}

func (st *streamState) snapshot(w *eventWriter, sess *fsm.Session, applied uint64) {
	if sess == nil {
		st.gone = true
		st.pos = position{version: applied, known: true}
		w.event("snapshot", st.pos.String(), []byte("null"))
		return
	}
	st.gone = false
	st.pos = position{version: sess.Version, known: true}
	w.event("snapshot", st.pos.String(), []byte(strings.TrimSpace(string(sessionDocument(sess, 0)))))
}

func (p position) String() string {
	if p.seq > 0 {
		return strconv.FormatUint(p.version, 10) + ":" + strconv.FormatUint(p.seq, 10)
	}
	return strconv.FormatUint(p.version, 10)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// eventWriter writes Server-Sent Events to a buffer; flush sends them
// under a write deadline.
type eventWriter struct {
	rc *http.ResponseController
	bw *bufio.Writer
}

// event writes one event; data is one line of JSON.
func (w *eventWriter) event(name, id string, data []byte) {
	fmt.Fprintf(w.bw, "id: %s\nevent: %s\ndata: %s\n\n", id, name, data)
}

func (w *eventWriter) comment(text string) { fmt.Fprintf(w.bw, ": %s\n\n", text) }

// resume tells the reader the server ends the stream and it should
// reconnect with its last event id.
func (w *eventWriter) resume(reason string) {
	fmt.Fprintf(w.bw, "event: resume\ndata: {\"reason\":%s}\n\n", jsonString(reason))
}

// arm gives the writes that follow streamWriteTimeout to complete; a
// buffer that fills up is written through under the same deadline.
func (w *eventWriter) arm() { _ = w.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)) }

func (w *eventWriter) flush() error {
	if w.bw.Buffered() == 0 {
		return nil
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	return w.rc.Flush()
}
