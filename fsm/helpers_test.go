package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"sort"
	"testing"

	"github.com/hashicorp/raft"
)

// testLimits are small enough that every limit is easy to reach in a test.
var testLimits = Limits{
	MaxSessionIDBytes: 16,
	MaxMessageIDBytes: 8,
	MaxRoleBytes:      8,
	MaxContentBytes:   32,
	MaxMetaBytes:      32,
	MaxFieldBytes:     64,
	MaxFieldNameBytes: 12,
	MaxMessages:       4,
}

// msg builds a NewMessage; meta may be empty.
func msg(id, role, content string, meta ...string) NewMessage {
	m := NewMessage{ID: id, Role: role, Content: content}
	if len(meta) > 0 {
		m.Meta = json.RawMessage(meta[0])
	}
	return m
}

func appendCmd(session string, msgs ...NewMessage) Command {
	return Command{Op: OpAppendMessages, Session: session, Messages: msgs}
}

// fields builds a Fields map from name, JSON pairs; the JSON "" means nil.
func fields(kv ...string) map[string]json.RawMessage {
	m := make(map[string]json.RawMessage, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			m[kv[i]] = nil
		} else {
			m[kv[i]] = json.RawMessage(kv[i+1])
		}
	}
	return m
}

func mergeCmd(session string, kv ...string) Command {
	return Command{Op: OpMergeFields, Session: session, Fields: fields(kv...)}
}

func patchCmd(session, patch string) Command {
	return Command{Op: OpPatchFields, Session: session, Patch: json.RawMessage(patch)}
}

func putCmd(session, field, value string) Command {
	return Command{Op: OpPutField, Session: session, Field: field, Value: json.RawMessage(value)}
}

func deleteFieldCmd(session, field string) Command {
	return Command{Op: OpDeleteField, Session: session, Field: field}
}

func deleteCmd(session string) Command {
	return Command{Op: OpDeleteSession, Session: session}
}

func ifVersion(c Command, v uint64) Command {
	c.HasIfVersion, c.IfVersion = true, v
	return c
}

func at(c Command, ms int64) Command {
	c.At = ms
	return c
}

// atOf is the At the table runners stamp on a command applied at index
// unless the command sets its own.
func atOf(index uint64) int64 { return 1_000_000 + int64(index) }

// applySetup applies cmds at indexes 1..len(cmds) with ApplyCommand and fails
// the test if any of them does not succeed.
func applySetup(t testing.TB, f *FSM, cmds []Command) {
	t.Helper()
	for i := range cmds {
		c := cmds[i]
		index := uint64(i + 1)
		if c.At == 0 {
			c.At = atOf(index)
		}
		if r := f.ApplyCommand(index, &c); r.Status != StatusOK {
			t.Fatalf("setup command %d (%v): status %v: %s", i, c.Op, r.Status, r.Detail)
		}
	}
}

// applyLog encodes cmd and applies it through the raft.FSM interface.
func applyLog(t testing.TB, f *FSM, index uint64, cmd Command) *Result {
	t.Helper()
	out := f.Apply(&raft.Log{Type: raft.LogCommand, Index: index, Data: cmd.Encode()})
	r, ok := out.(*Result)
	if !ok {
		t.Fatalf("Apply returned %T, want *Result", out)
	}
	return r
}

// bufSink is a raft.SnapshotSink that collects the snapshot in memory.
type bufSink struct {
	bytes.Buffer
	closed, canceled bool
	failAfter        int // when > 0, Write fails once the buffer would exceed it
}

var errSinkFull = errors.New("test sink: full")

func (s *bufSink) Write(p []byte) (int, error) {
	if s.failAfter > 0 && s.Len()+len(p) > s.failAfter {
		return 0, errSinkFull
	}
	return s.Buffer.Write(p)
}
func (s *bufSink) ID() string    { return "test" }
func (s *bufSink) Close() error  { s.closed = true; return nil }
func (s *bufSink) Cancel() error { s.canceled = true; return nil }

// snapshotBytes takes a snapshot of f and persists it into memory.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	return persist(t, snap)
}

func persist(t testing.TB, snap raft.FSMSnapshot) []byte {
	t.Helper()
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.canceled {
		t.Fatalf("Persist left sink closed=%v canceled=%v, want closed and not canceled", sink.closed, sink.canceled)
	}
	return sink.Bytes()
}

// closeTracker is the ReadCloser handed to Restore; it records Close.
type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func restoreBytes(f *FSM, b []byte) error {
	return f.Restore(&closeTracker{Reader: bytes.NewReader(b)})
}

// stateBytes is the FSM's state without the applied index: a snapshot with
// the 8-byte index zeroed, so states can be compared across ApplyCommand
// (which does not advance the applied index) and Apply.
func stateBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	b := snapshotBytes(t, f)
	out := append([]byte(nil), b...)
	for i := 5; i < 13; i++ {
		out[i] = 0
	}
	return out
}

// msgIndexCopy deep-copies the message-id index so it can be compared later.
// A session without messages may or may not have an (empty) entry; the copy
// leaves empty entries out.
func msgIndexCopy(f *FSM) map[string]idIndex {
	out := make(map[string]idIndex, len(f.msgIndex))
	for s, ids := range f.msgIndex {
		if ids.len() == 0 {
			continue
		}
		out[s] = idIndex{seqs: maps.Clone(ids.seqs), clash: maps.Clone(ids.clash)}
	}
	return out
}

// stateMark captures the state so a test can assert that nothing changed.
type stateMark struct {
	state []byte
	index map[string]idIndex
}

func markState(t testing.TB, f *FSM) stateMark {
	return stateMark{state: stateBytes(t, f), index: msgIndexCopy(f)}
}

func (m stateMark) assertUnchanged(t testing.TB, f *FSM) {
	t.Helper()
	if got := stateBytes(t, f); !bytes.Equal(got, m.state) {
		t.Errorf("state changed, want it unchanged")
	}
	if got := msgIndexCopy(f); !reflect.DeepEqual(got, m.index) {
		t.Errorf("message-id index changed:\n got %v\nwant %v", got, m.index)
	}
}

// sessions returns every session of f, sorted by id.
func sessions(f *FSM) []*Session {
	f.mu.RLock()
	var out []*Session
	for _, b := range f.buckets {
		for _, s := range b.sessions {
			out = append(out, s)
		}
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// checkSession reports the first broken invariant of one session, or nil:
// seqs are 1..n, message ids unique, FieldBytes the sum of key and value
// lengths, and the session stored under its own id.
func checkSession(s *Session) error {
	seen := make(map[string]bool, s.messages.len())
	for i, m := range s.Messages() {
		if m.Seq != uint64(i+1) {
			return fmt.Errorf("session %q: message %d has seq %d", s.ID, i, m.Seq)
		}
		if seen[m.ID] {
			return fmt.Errorf("session %q: message id %q stored twice", s.ID, m.ID)
		}
		seen[m.ID] = true
	}
	n := 0
	for k, v := range s.fields {
		n += len(k) + len(v)
	}
	if n != s.fieldBytes {
		return fmt.Errorf("session %q: FieldBytes %d, fields take %d", s.ID, s.fieldBytes, n)
	}
	return nil
}

// checkInvariants checks every session of f and that the message-id index
// matches the messages exactly. Only call it from the applying goroutine.
func checkInvariants(t testing.TB, f *FSM) {
	t.Helper()
	all := sessions(f)
	var total int64
	for _, s := range all {
		if err := checkSession(s); err != nil {
			t.Fatal(err)
		}
		size := int64(sessionOverhead + len(s.ID))
		for k, v := range s.fields {
			size += int64(len(k) + len(v))
		}
		for _, m := range s.Messages() {
			size += int64(messageSize(&m))
		}
		for _, a := range s.alarms {
			size += int64(messageOverhead + len(a.Name) + len(a.Payload))
		}
		for _, fa := range s.fired {
			size += int64(messageOverhead + len(fa.Name) + len(fa.Payload))
		}
		if s.Size() != size {
			t.Fatalf("session %q: Size %d, recounted %d", s.ID, s.Size(), size)
		}
		total += size
		if got, ok := f.Get(s.ID); !ok || got != s {
			t.Fatalf("session %q is not found under its own id", s.ID)
		}
		ids := f.msgIndex[s.ID]
		if ids.len() != s.messages.len() {
			t.Fatalf("session %q: index holds %d ids, session %d messages", s.ID, ids.len(), s.messages.len())
		}
		for _, m := range s.Messages() {
			if seq, _ := ids.lookup(s.messages, m.ID); seq != m.Seq {
				t.Fatalf("session %q: index maps %q to %d, want %d", s.ID, m.ID, seq, m.Seq)
			}
		}
	}
	for id := range f.msgIndex {
		if _, ok := f.Get(id); !ok {
			t.Fatalf("message-id index holds absent session %q", id)
		}
	}
	var timed int64
	for _, s := range all {
		timed += timedOf(s)
	}
	if f.timed.Load() != timed {
		t.Fatalf("FSM counts %d timed sessions, there are %d", f.timed.Load(), timed)
	}
	if f.Bytes() != total {
		t.Fatalf("FSM.Bytes %d, sessions hold %d", f.Bytes(), total)
	}
}

// enc encodes a command value.
func enc(c Command) []byte { return c.Encode() }
