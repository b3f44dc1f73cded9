package fsm

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// cmdIndex is the raft index the table runner applies the command under test
// at; setup commands take the indexes 1, 2, 3, ….
const cmdIndex = 100

type applyCase struct {
	name   string
	limits *Limits // testLimits when nil
	setup  []Command
	cmd    Command

	status  Status
	version uint64 // Result.Version
	created bool
	changed bool
	check   func(t *testing.T, f *FSM, r *Result)
}

// runApplyCases applies each case's setup, then its command at cmdIndex, and
// checks the result. Beyond the case's own expectations it asserts what holds
// for every command: a failed or no-op command leaves the state (and the
// message-id index) exactly as it was; a successful write stamps the session
// with the index and the command's At; invariants hold afterwards.
func runApplyCases(t *testing.T, cases []applyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			limits := testLimits
			if tc.limits != nil {
				limits = *tc.limits
			}
			f := New(limits)
			applySetup(t, f, tc.setup)
			mark := markState(t, f)
			before, _ := f.Get(tc.cmd.Session)

			c := tc.cmd
			if c.At == 0 {
				c.At = atOf(cmdIndex)
			}
			r := f.ApplyCommand(cmdIndex, &c)
			if r == nil {
				t.Fatal("ApplyCommand returned nil")
			}
			if r.Status != tc.status || r.Version != tc.version || r.Created != tc.created || r.Changed != tc.changed {
				t.Fatalf("got status %v version %d created %v changed %v (%s), want %v %d %v %v",
					r.Status, r.Version, r.Created, r.Changed, r.Detail, tc.status, tc.version, tc.created, tc.changed)
			}
			if r.Status != StatusOK && r.Detail == "" {
				t.Errorf("status %v without a Detail", r.Status)
			}
			if r.Status != StatusOK || !r.Changed {
				mark.assertUnchanged(t, f)
				if after, _ := f.Get(tc.cmd.Session); after != before {
					t.Errorf("the published session was replaced")
				}
			}
			if r.Status == StatusOK && r.Changed && c.Op != OpDeleteSession && c.Op != OpExpire {
				s, ok := f.Get(c.Session)
				if !ok {
					t.Fatalf("session %q absent after a successful write", c.Session)
				}
				if r.Session != s {
					t.Errorf("Result.Session is not the published session")
				}
				if s.Version != cmdIndex || s.UpdatedAt != c.At {
					t.Errorf("session version %d updatedAt %d, want %d %d", s.Version, s.UpdatedAt, cmdIndex, c.At)
				}
				wantCreatedAt := c.At
				if before != nil {
					wantCreatedAt = before.CreatedAt
				}
				if s.CreatedAt != wantCreatedAt {
					t.Errorf("createdAt %d, want %d", s.CreatedAt, wantCreatedAt)
				}
			}
			checkInvariants(t, f)
			if tc.check != nil {
				tc.check(t, f, r)
			}
		})
	}
}

// storedMsg is the Message an append at index stores by default.
func storedMsg(seq uint64, index uint64, m NewMessage) Message {
	return Message{Seq: seq, ID: m.ID, Role: m.Role, Content: m.Content, Meta: m.Meta, CreatedAt: atOf(index)}
}

func wantMessages(want ...Message) func(t *testing.T, f *FSM, r *Result) {
	return func(t *testing.T, f *FSM, r *Result) {
		t.Helper()
		if !reflect.DeepEqual(withoutVersions(r.Messages), want) {
			t.Errorf("Result.Messages:\n got %+v\nwant %+v", r.Messages, want)
		}
	}
}

func wantStored(session string, want ...Message) func(t *testing.T, f *FSM, r *Result) {
	return func(t *testing.T, f *FSM, r *Result) {
		t.Helper()
		s, ok := f.Get(session)
		if !ok {
			t.Fatalf("session %q absent", session)
		}
		if got := withoutVersions(s.Messages()); !reflect.DeepEqual(got, want) {
			t.Errorf("stored messages:\n got %+v\nwant %+v", got, want)
		}
	}
}

func both(checks ...func(t *testing.T, f *FSM, r *Result)) func(t *testing.T, f *FSM, r *Result) {
	return func(t *testing.T, f *FSM, r *Result) {
		for _, c := range checks {
			c(t, f, r)
		}
	}
}

func TestAppendMessages(t *testing.T) {
	m1, m2, m3, m4 := msg("m1", "user", "one"), msg("m2", "bot", "two", `{"k":1}`), msg("m3", "user", "three"), msg("m4", "user", "four")
	runApplyCases(t, []applyCase{{
		name:   "first append creates the session with seq 1",
		cmd:    appendCmd("s", m1),
		status: StatusOK, version: cmdIndex, created: true, changed: true,
		check: both(wantMessages(storedMsg(1, cmdIndex, m1)), wantStored("s", storedMsg(1, cmdIndex, m1)),
			func(t *testing.T, f *FSM, r *Result) {
				if len(r.Session.Fields()) != 0 || r.Session.FieldBytes() != 0 {
					t.Errorf("a new session has fields %v", r.Session.Fields())
				}
			}),
	}, {
		name:   "a batch takes consecutive seqs in order",
		setup:  []Command{appendCmd("s", m1)},
		cmd:    appendCmd("s", m2, m3, m4),
		status: StatusOK, version: cmdIndex, changed: true,
		check: both(
			wantMessages(storedMsg(2, cmdIndex, m2), storedMsg(3, cmdIndex, m3), storedMsg(4, cmdIndex, m4)),
			wantStored("s", storedMsg(1, 1, m1), storedMsg(2, cmdIndex, m2), storedMsg(3, cmdIndex, m3), storedMsg(4, cmdIndex, m4))),
	}, {
		name:   "appends to other sessions do not share seqs",
		setup:  []Command{appendCmd("a", m1, m2), appendCmd("b", m1)},
		cmd:    appendCmd("b", m2),
		status: StatusOK, version: cmdIndex, changed: true,
		check: wantMessages(storedMsg(2, cmdIndex, m2)),
	}, {
		name:   "replaying stored ids returns the stored messages and changes nothing",
		setup:  []Command{appendCmd("s", m1, m2), mergeCmd("s", "f", "1")},
		cmd:    appendCmd("s", m1, m2),
		status: StatusOK, version: 2,
		check: func(t *testing.T, f *FSM, r *Result) {
			wantMessages(storedMsg(1, 1, m1), storedMsg(2, 1, m2))(t, f, r)
			if s, _ := f.Get("s"); r.Session != s {
				t.Errorf("a replay answers with another session than the stored one")
			}
		},
	}, {
		name:   "replaying one message of the middle returns its seq",
		setup:  []Command{appendCmd("s", m1, m2, m3)},
		cmd:    appendCmd("s", m2),
		status: StatusOK, version: 1,
		check: wantMessages(storedMsg(2, 1, m2)),
	}, {
		name:   "a replay succeeds whatever IfVersion says",
		setup:  []Command{appendCmd("s", m1)},
		cmd:    ifVersion(appendCmd("s", m1), 77),
		status: StatusOK, version: 1,
		check: wantMessages(storedMsg(1, 1, m1)),
	}, {
		name:   "a replay on a full session succeeds",
		setup:  []Command{appendCmd("s", m1, m2, m3, m4)},
		cmd:    appendCmd("s", m4, m1),
		status: StatusOK, version: 1,
		check: wantMessages(storedMsg(4, 1, m4), storedMsg(1, 1, m1)),
	}, {
		name:   "a partly replayed batch appends only the new messages",
		setup:  []Command{appendCmd("s", m1)},
		cmd:    appendCmd("s", m1, m2),
		status: StatusOK, version: cmdIndex, changed: true,
		check: both(wantMessages(storedMsg(1, 1, m1), storedMsg(2, cmdIndex, m2)),
			wantStored("s", storedMsg(1, 1, m1), storedMsg(2, cmdIndex, m2))),
	}, {
		name:   "a stored id with other content is an id conflict",
		setup:  []Command{appendCmd("s", m1)},
		cmd:    appendCmd("s", msg("m1", "user", "ONE")),
		status: StatusIDConflict, version: 1,
	}, {
		name:   "a stored id with another role is an id conflict",
		setup:  []Command{appendCmd("s", m1)},
		cmd:    appendCmd("s", msg("m1", "bot", "one")),
		status: StatusIDConflict, version: 1,
	}, {
		name:   "a stored id with other meta is an id conflict",
		setup:  []Command{appendCmd("s", m2)},
		cmd:    appendCmd("s", msg("m2", "bot", "two", `{"k":2}`)),
		status: StatusIDConflict, version: 1,
	}, {
		name:   "a stored id without its meta is an id conflict",
		setup:  []Command{appendCmd("s", m2)},
		cmd:    appendCmd("s", msg("m2", "bot", "two")),
		status: StatusIDConflict, version: 1,
	}, {
		name:   "an id conflict late in a batch stores none of the batch",
		setup:  []Command{appendCmd("s", m1)},
		cmd:    appendCmd("s", m2, m3, msg("m1", "user", "changed")),
		status: StatusIDConflict, version: 1,
	}, {
		name:   "an id twice in one batch is stored once",
		cmd:    appendCmd("s", m1, m2, m1),
		status: StatusOK, version: cmdIndex, created: true, changed: true,
		check: both(wantMessages(storedMsg(1, cmdIndex, m1), storedMsg(2, cmdIndex, m2), storedMsg(1, cmdIndex, m1)),
			wantStored("s", storedMsg(1, cmdIndex, m1), storedMsg(2, cmdIndex, m2))),
	}, {
		name:   "an id twice in one batch with other content is an id conflict",
		cmd:    appendCmd("s", m1, m2, msg("m1", "user", "other")),
		status: StatusIDConflict,
	}, {
		name:   "an id twice in one batch with other content conflicts on an existing session",
		setup:  []Command{appendCmd("s", m3)},
		cmd:    appendCmd("s", m1, msg("m1", "bot", "one")),
		status: StatusIDConflict, version: 1,
	}, {
		name:   "reaching MaxMessages exactly is allowed",
		setup:  []Command{appendCmd("s", m1, m2)},
		cmd:    appendCmd("s", m3, m4),
		status: StatusOK, version: cmdIndex, changed: true,
	}, {
		name:   "going over MaxMessages is too large",
		setup:  []Command{appendCmd("s", m1, m2, m3)},
		cmd:    appendCmd("s", m4, msg("m5", "user", "five")),
		status: StatusTooLarge, version: 1,
	}, {
		name:   "a first batch over MaxMessages is too large and creates nothing",
		cmd:    appendCmd("s", m1, m2, m3, m4, msg("m5", "user", "five")),
		status: StatusTooLarge,
		check: func(t *testing.T, f *FSM, r *Result) {
			if _, ok := f.Get("s"); ok {
				t.Errorf("session created by a failed append")
			}
		},
	}, {
		name:   "MaxMessages counts an id repeated in the batch once",
		setup:  []Command{appendCmd("s", m1, m2, m3)},
		cmd:    appendCmd("s", m4, m4, m1),
		status: StatusOK, version: cmdIndex, changed: true,
	}, {
		name:   "an empty batch is invalid",
		cmd:    appendCmd("s"),
		status: StatusInvalid,
	}, {
		name:   "an empty message id is invalid",
		cmd:    appendCmd("s", msg("", "user", "x")),
		status: StatusInvalid,
	}, {
		name:   "a message id over the limit is invalid",
		cmd:    appendCmd("s", msg("123456789", "user", "x")),
		status: StatusInvalid,
	}, {
		name:   "an empty role is invalid",
		cmd:    appendCmd("s", msg("m1", "", "x")),
		status: StatusInvalid,
	}, {
		name:   "a role over the limit is invalid",
		cmd:    appendCmd("s", msg("m1", "assistant", "x")),
		status: StatusInvalid,
	}, {
		name:   "content at the limit is stored",
		cmd:    appendCmd("s", msg("m1", "user", strings.Repeat("c", 32))),
		status: StatusOK, version: cmdIndex, created: true, changed: true,
	}, {
		name:   "empty content is stored",
		cmd:    appendCmd("s", msg("m1", "user", "")),
		status: StatusOK, version: cmdIndex, created: true, changed: true,
	}, {
		name:   "content over the limit is invalid",
		setup:  []Command{appendCmd("s", m1)},
		cmd:    appendCmd("s", msg("m2", "user", strings.Repeat("c", 33))),
		status: StatusInvalid,
	}, {
		name:   "meta over the limit is invalid",
		cmd:    appendCmd("s", msg("m1", "user", "x", `"`+strings.Repeat("m", 31)+`"`)),
		status: StatusInvalid,
	}, {
		name:   "meta that is not JSON is invalid",
		cmd:    appendCmd("s", msg("m1", "user", "x", `{"k":`)),
		status: StatusInvalid,
	}, {
		name:   "one invalid message fails the whole batch",
		setup:  []Command{appendCmd("s", m1)},
		cmd:    appendCmd("s", m2, msg("m3", "", "x")),
		status: StatusInvalid,
	}, {
		name:   "an invalid message is reported before an id conflict",
		setup:  []Command{appendCmd("s", m1)},
		cmd:    appendCmd("s", msg("m1", "user", "other"), msg("m9", "user", strings.Repeat("c", 40))),
		status: StatusInvalid,
	}})
}

func TestInvalidSessionIDIsRejectedByEveryOp(t *testing.T) {
	bad := []string{"", "has space", "a/b", "ü", "semi;colon", "12345678901234567"}
	ok := []string{"a", "A-Z_0.9:x@y", "1234567890123456"}
	var cases []applyCase
	for _, id := range bad {
		for _, c := range []Command{appendCmd(id, msg("m", "u", "c")), mergeCmd(id, "f", "1"),
			patchCmd(id, `{"f":1}`), putCmd(id, "f", "1"), deleteFieldCmd(id, "f"), deleteCmd(id)} {
			cases = append(cases, applyCase{name: c.Op.String() + " " + id, cmd: c, status: StatusInvalid})
		}
	}
	for _, id := range ok {
		cases = append(cases, applyCase{name: "valid " + id, cmd: putCmd(id, "f", "1"),
			status: StatusOK, version: cmdIndex, created: true, changed: true})
	}
	runApplyCases(t, cases)
}

func TestIfVersion(t *testing.T) {
	setup := []Command{appendCmd("s", msg("m1", "u", "c")), putCmd("x", "f", "1"), putCmd("s", "f", "1")} // s is at 3
	var cases []applyCase
	for _, c := range []Command{appendCmd("s", msg("m2", "u", "c")), mergeCmd("s", "g", "2"),
		patchCmd("s", `{"g":2}`), putCmd("s", "g", "2"), deleteFieldCmd("s", "f")} {
		cases = append(cases,
			applyCase{name: c.Op.String() + " with a matching version applies", setup: setup,
				cmd: ifVersion(c, 3), status: StatusOK, version: cmdIndex, changed: true},
			applyCase{name: c.Op.String() + " with an older version is a mismatch", setup: setup,
				cmd: ifVersion(c, 1), status: StatusVersionMismatch, version: 3,
				check: func(t *testing.T, f *FSM, r *Result) {
					if s, _ := f.Get("s"); r.Session != s {
						t.Errorf("a mismatch does not answer with the current session")
					}
				}},
			applyCase{name: c.Op.String() + " with a future version is a mismatch", setup: setup,
				cmd: ifVersion(c, cmdIndex), status: StatusVersionMismatch, version: 3},
			applyCase{name: c.Op.String() + " with version 0 on an existing session is a mismatch", setup: setup,
				cmd: ifVersion(c, 0), status: StatusVersionMismatch, version: 3},
		)
		absent := c
		absent.Session = "new"
		if c.Op != OpDeleteField {
			cases = append(cases,
				applyCase{name: c.Op.String() + " with version 0 on an absent session creates it", setup: setup,
					cmd: ifVersion(absent, 0), status: StatusOK, version: cmdIndex, created: true, changed: true},
				applyCase{name: c.Op.String() + " with a version on an absent session is a mismatch", setup: setup,
					cmd: ifVersion(absent, 3), status: StatusVersionMismatch})
		}
	}
	runApplyCases(t, cases)
}

func TestVersionIsTheIndexOfTheLastWrite(t *testing.T) {
	f := New(DefaultLimits)
	steps := []struct {
		index uint64
		cmd   Command
	}{
		{7, at(appendCmd("s", msg("m1", "u", "c")), 70)},
		{9, at(putCmd("other", "f", "1"), 90)},
		{12, at(mergeCmd("s", "a", "1"), 120)},
		{13, at(patchCmd("s", `{"b":{"c":1}}`), 130)},
		{20, at(putCmd("s", "d", "true"), 200)},
		{21, at(deleteFieldCmd("s", "a"), 210)},
		{30, at(appendCmd("s", msg("m2", "u", "c")), 300)},
	}
	for _, st := range steps {
		r := f.ApplyCommand(st.index, &st.cmd)
		s, _ := f.Get("s")
		if st.cmd.Session == "s" && (r.Version != st.index || s.Version != st.index || s.UpdatedAt != st.cmd.At) {
			t.Fatalf("after %v at %d: result version %d, session version %d updatedAt %d", st.cmd.Op, st.index, r.Version, s.Version, s.UpdatedAt)
		}
		if s.CreatedAt != 70 {
			t.Fatalf("createdAt changed to %d", s.CreatedAt)
		}
	}
	s, _ := f.Get("s")
	if got := s.Messages()[1].CreatedAt; got != 300 {
		t.Errorf("message createdAt %d, want the append's At 300", got)
	}
	// A replay and a failed write do not move the version.
	f.ApplyCommand(31, &Command{Op: OpAppendMessages, Session: "s", At: 310, Messages: []NewMessage{msg("m2", "u", "c")}})
	f.ApplyCommand(32, &Command{Op: OpDeleteField, Session: "s", At: 320, Field: "nope"})
	if s, _ := f.Get("s"); s.Version != 30 || s.UpdatedAt != 300 {
		t.Errorf("version %d updatedAt %d after a replay and a failed write, want 30 300", s.Version, s.UpdatedAt)
	}
}

// TestDeletingFieldsOfAnAbsentSessionDoesNotCreateIt: a merge or patch that
// only removes fields answers not-found for a missing session, while an
// empty merge still creates it.
func TestDeletingFieldsOfAnAbsentSessionDoesNotCreateIt(t *testing.T) {
	f := New(DefaultLimits)
	for i, cmd := range []*Command{
		{Op: OpMergeFields, Session: "s", At: 1, Fields: map[string]json.RawMessage{"a": nil}},
		{Op: OpPatchFields, Session: "s", At: 1, Patch: json.RawMessage(`{"a":null}`)},
	} {
		if r := f.ApplyCommand(uint64(i+1), cmd); r.Status != StatusNotFound {
			t.Fatalf("%s of only nulls on an absent session = %v, want not-found", cmd.Op, r.Status)
		}
		if _, ok := f.Get("s"); ok {
			t.Fatalf("%s created the session", cmd.Op)
		}
	}
	if r := f.ApplyCommand(3, &Command{Op: OpMergeFields, Session: "s", At: 1, Fields: map[string]json.RawMessage{}}); r.Status != StatusOK || !r.Created {
		t.Fatalf("empty merge = %+v, want a created session", r)
	}
}

// withoutVersions copies msgs with Version cleared, for tables that state
// contents; TestEveryChangeCarriesItsVersion checks versions.
func withoutVersions(msgs []Message) []Message {
	if msgs == nil {
		return nil
	}
	out := append([]Message{}, msgs...)
	for i := range out {
		out[i].Version = 0
	}
	return out
}

// Every message carries the version of the append that stored it, every
// session the version that created it and the version of its last fields
// change: what a change stream resumes by.
func TestEveryChangeCarriesItsVersion(t *testing.T) {
	f := New(DefaultLimits)
	applyLog(t, f, 3, appendCmd("s", msg("a", "user", "x")))
	applyLog(t, f, 5, mergeCmd("s", "k", "1"))
	applyLog(t, f, 7, appendCmd("s", msg("b", "user", "y"), msg("c", "user", "z")))
	applyLog(t, f, 8, appendCmd("s", msg("a", "user", "x"))) // a replay changes nothing
	s, _ := f.Get("s")
	var got []uint64
	for _, m := range s.Messages() {
		got = append(got, m.Version)
	}
	if !reflect.DeepEqual(got, []uint64{3, 7, 7}) || s.CreatedVersion() != 3 || s.FieldsVersion() != 5 || s.Version != 7 {
		t.Fatalf("message versions %v, created %d, fields %d, version %d", got, s.CreatedVersion(), s.FieldsVersion(), s.Version)
	}
	applyLog(t, f, 9, deleteCmd("s"))
	applyLog(t, f, 10, mergeCmd("s", "k", "2"))
	if s, _ := f.Get("s"); s.CreatedVersion() != 10 || s.FieldsVersion() != 10 || s.MessageCount() != 0 {
		t.Fatalf("a session written again after a delete: created %d, fields %d, %d messages", s.CreatedVersion(), s.FieldsVersion(), s.MessageCount())
	}
}

// TestAnIDRepeatedInALongBatchIsStoredOnce: batches longer than the ones
// searched in place find repeated ids through a map; both ways answer a
// repeat with the first copy and store it once.
func TestAnIDRepeatedInALongBatchIsStoredOnce(t *testing.T) {
	for _, n := range []int{batchScanMax, batchScanMax + 1, 3 * batchScanMax} {
		f := New(DefaultLimits)
		var msgs []NewMessage
		for i := range n - 1 {
			msgs = append(msgs, msg(fmt.Sprintf("m%d", i), "user", fmt.Sprintf("c%d", i)))
		}
		msgs = append(msgs, msgs[1]) // the second message again, last
		r := applyLog(t, f, 1, appendCmd("s", msgs...))
		if r.Status != StatusOK {
			t.Fatalf("batch of %d: status %v (%s)", n, r.Status, r.Detail)
		}
		if got := r.Messages[n-1]; got.Seq != 2 || got.ID != "m1" {
			t.Errorf("batch of %d: the repeat was answered as seq %d id %q, want seq 2 id m1", n, got.Seq, got.ID)
		}
		if s, _ := f.Get("s"); s.MessageCount() != n-1 {
			t.Errorf("batch of %d: %d messages stored, want %d", n, s.MessageCount(), n-1)
		}

		conflicting := append(msgs[:n-1:n-1], msg("m1", "user", "other"))
		r = applyLog(t, f, 2, appendCmd("t", conflicting...))
		if r.Status != StatusIDConflict {
			t.Errorf("batch of %d: a repeat with other content answered %v, want an id conflict", n, r.Status)
		}
	}
}
