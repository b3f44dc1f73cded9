package fsm

import (
	"reflect"
	"testing"
)

func TestDeleteSession(t *testing.T) {
	runApplyCases(t, []applyCase{{
		name:   "deleting removes the session and its message ids",
		setup:  []Command{appendCmd("s", msg("m1", "u", "c")), mergeCmd("s", "f", "1"), appendCmd("other", msg("m1", "u", "c"))},
		cmd:    deleteCmd("s"),
		status: StatusOK, version: cmdIndex, changed: true,
		check: func(t *testing.T, f *FSM, r *Result) {
			if _, ok := f.Get("s"); ok {
				t.Errorf("session still present")
			}
			if _, ok := f.msgIndex["s"]; ok {
				t.Errorf("message ids of the deleted session are still indexed")
			}
			if r.Session != nil {
				t.Errorf("Result.Session = %+v, want nil", r.Session)
			}
			if _, ok := f.Get("other"); !ok || f.Len() != 1 {
				t.Errorf("another session was removed")
			}
		},
	}, {
		name:   "deleting an absent session is not found",
		setup:  []Command{appendCmd("other", msg("m1", "u", "c"))},
		cmd:    deleteCmd("s"),
		status: StatusNotFound,
	}, {
		name:   "deleting with a matching IfVersion applies",
		setup:  []Command{appendCmd("s", msg("m1", "u", "c")), putCmd("s", "f", "1")},
		cmd:    ifVersion(deleteCmd("s"), 2),
		status: StatusOK, version: cmdIndex, changed: true,
	}, {
		name:   "deleting with a stale IfVersion is a version mismatch",
		setup:  []Command{appendCmd("s", msg("m1", "u", "c")), putCmd("s", "f", "1")},
		cmd:    ifVersion(deleteCmd("s"), 1),
		status: StatusVersionMismatch, version: 2,
	}, {
		name:   "deleting an absent session with IfVersion 0 is not found",
		cmd:    ifVersion(deleteCmd("s"), 0),
		status: StatusNotFound,
	}})
}

func TestSessionRecreatedAfterDeleteStartsOver(t *testing.T) {
	f := New(testLimits)
	m := msg("m1", "u", "c")
	applySetup(t, f, []Command{appendCmd("s", m, msg("m2", "u", "d")), putCmd("s", "f", "1"), deleteCmd("s")})
	r := f.ApplyCommand(10, &Command{Op: OpAppendMessages, Session: "s", At: 55, Messages: []NewMessage{msg("n1", "u", "other")}})
	if r.Status != StatusOK || !r.Created || !r.Changed || r.Messages[0].Seq != 1 {
		t.Fatalf("append after delete: %+v, want a new session whose first message has seq 1", r)
	}
	if r.Session.CreatedAt != 55 || len(r.Session.Fields()) != 0 || r.Session.MessageCount() != 1 {
		t.Fatalf("recreated session kept old state: %+v", r.Session)
	}
	checkInvariants(t, f)
}

// A late copy of an append (retried, then delivered after the session was
// deleted) must not bring the message back into the next session.
func TestDeletedSessionsMessageIDsStayReservedForTheRetention(t *testing.T) {
	f := New(testLimits)
	applySetup(t, f, []Command{at(appendCmd("s", msg("m1", "u", "c"), msg("m2", "u", "d")), 1000), at(deleteCmd("s"), 2000)})
	late := at(appendCmd("s", msg("m2", "u", "d")), 2000+TombstoneRetention)
	if r := f.ApplyCommand(10, &late); r.Status != StatusIDConflict || r.Changed {
		t.Fatalf("late append of a deleted message: %+v, want an id conflict that changes nothing", r)
	}
	if _, ok := f.Get("s"); ok {
		t.Fatalf("the refused append created the session")
	}
	// A snapshot carries the reservation to a replica that restores it.
	g := New(testLimits)
	if err := restoreBytes(g, snapshotBytes(t, f)); err != nil {
		t.Fatal(err)
	}
	if r := g.ApplyCommand(11, &late); r.Status != StatusIDConflict {
		t.Fatalf("restored replica accepted the late append: %+v", r)
	}
	// After the retention the id is free again, on every replica alike.
	later := at(appendCmd("s", msg("m2", "u", "d")), 2001+TombstoneRetention)
	for _, x := range []*FSM{f, g} {
		if r := x.ApplyCommand(12, &later); r.Status != StatusOK || r.Messages[0].Seq != 1 {
			t.Fatalf("append after the retention: %+v, want seq 1", r)
		}
	}
	checkInvariants(t, f)
}

func TestExpireRemovesOnlySessionsUpdatedBeforeTheCutoff(t *testing.T) {
	f := New(testLimits)
	for i, c := range []Command{
		at(appendCmd("old", msg("m", "u", "c")), 100),
		at(putCmd("edge", "f", "1"), 200),
		at(putCmd("new", "f", "1"), 300),
		at(putCmd("touched", "f", "1"), 50),
		at(putCmd("touched", "g", "2"), 250), // a later write keeps it alive
		at(putCmd("ancient", "f", "1"), -10),
	} {
		if r := f.ApplyCommand(uint64(i+1), &c); r.Status != StatusOK {
			t.Fatal(r.Detail)
		}
	}
	r := f.ApplyCommand(20, &Command{Op: OpExpire, At: 1000, Before: 50})
	if r.Status != StatusOK || r.Expired != 1 || !r.Changed {
		t.Fatalf("expire before 50: %+v, want 1 expired", r)
	}
	mark := markState(t, f)
	r = f.ApplyCommand(21, &Command{Op: OpExpire, At: 1000, Before: -10})
	if r.Status != StatusOK || r.Expired != 0 || r.Changed {
		t.Fatalf("expire with nothing older: %+v, want 0 expired and no change", r)
	}
	mark.assertUnchanged(t, f)

	r = f.ApplyCommand(22, &Command{Op: OpExpire, At: 1000, Before: 200})
	if r.Status != StatusOK || r.Expired != 1 || !r.Changed {
		t.Fatalf("expire before 200: %+v, want 1 expired", r)
	}
	var left []string
	for _, s := range sessions(f) {
		left = append(left, s.ID)
	}
	if want := []string{"edge", "new", "touched"}; !reflect.DeepEqual(left, want) {
		t.Fatalf("after expiring before 200, sessions %v, want %v (UpdatedAt == Before stays)", left, want)
	}
	if _, ok := f.msgIndex["old"]; ok {
		t.Errorf("message ids of an expired session are still indexed")
	}
	// A session re-created after it expired does not remember its message ids.
	if r := f.ApplyCommand(23, &Command{Op: OpAppendMessages, Session: "old", At: 400,
		Messages: []NewMessage{msg("m", "u", "other")}}); r.Status != StatusOK || !r.Created {
		t.Fatalf("append to an expired session's id: %+v", r)
	}
	r = f.ApplyCommand(24, &Command{Op: OpExpire, At: 1000, Before: 1 << 62})
	if r.Expired != 4 || f.Len() != 0 || len(f.msgIndex) != 0 {
		t.Fatalf("expire everything: expired %d, %d sessions and %d indexed left", r.Expired, f.Len(), len(f.msgIndex))
	}
	checkInvariants(t, f)
}

func TestNoopChangesNothing(t *testing.T) {
	runApplyCases(t, []applyCase{{
		name:   "noop on an empty FSM",
		cmd:    Command{Op: OpNoop},
		status: StatusOK,
	}, {
		name:   "noop ignores session and IfVersion",
		setup:  []Command{putCmd("s", "f", "1")},
		cmd:    ifVersion(Command{Op: OpNoop, Session: "s"}, 99),
		status: StatusOK,
	}})
}

func TestPublishedSessionNeverChanges(t *testing.T) {
	f := New(DefaultLimits)
	applySetup(t, f, []Command{appendCmd("s", msg("m1", "u", "a"), msg("m2", "u", "b"), msg("m3", "u", "c")), putCmd("s", "f", `"v"`)})
	old, _ := f.Get("s")
	oldMsgs := append([]Message(nil), old.Messages()...)
	// Appending may reuse the backing array of old's messages; old must not see it.
	for i := 0; i < 10; i++ {
		c := appendCmd("s", msg("n"+string(rune('a'+i)), "u", "x"))
		c.At = 5
		f.ApplyCommand(uint64(10+i), &c)
	}
	f.ApplyCommand(30, &Command{Op: OpPutField, Session: "s", Field: "f", Value: []byte(`"changed"`)})
	f.ApplyCommand(31, &Command{Op: OpMergeFields, Session: "s", Fields: fields("g", "1")})
	if !reflect.DeepEqual(old.Messages(), oldMsgs) || old.MessageCount() != 3 || old.Version != 2 {
		t.Errorf("old session's messages changed: %+v", old.Messages())
	}
	if v, _ := old.Field("f"); string(v) != `"v"` || len(old.Fields()) != 1 {
		t.Errorf("old session's fields changed: %s", old.Fields())
	}
	if got := old.MessagesAfter(2, 10); len(got) != 1 || got[0].ID != "m3" {
		t.Errorf("old.MessagesAfter(2, 10) = %+v", got)
	}
}

func TestMessagesAfterPages(t *testing.T) {
	f := New(DefaultLimits)
	applySetup(t, f, []Command{appendCmd("s", msg("a", "u", "1"), msg("b", "u", "2"), msg("c", "u", "3"), msg("d", "u", "4"))})
	s, _ := f.Get("s")
	for _, tc := range []struct {
		after uint64
		limit int
		want  string
	}{{0, 2, "ab"}, {0, 10, "abcd"}, {2, 1, "c"}, {3, 5, "d"}, {4, 5, ""}, {100, 5, ""}, {1, 0, ""}, {1, -1, ""}, {1<<64 - 1, 1 << 62, ""}} {
		var got string
		for i, m := range s.MessagesAfter(tc.after, tc.limit) {
			if m.Seq != tc.after+uint64(i)+1 {
				t.Errorf("MessagesAfter(%d, %d)[%d] has seq %d", tc.after, tc.limit, i, m.Seq)
			}
			got += m.ID
		}
		if got != tc.want {
			t.Errorf("MessagesAfter(%d, %d) = %q, want %q", tc.after, tc.limit, got, tc.want)
		}
	}
}
