package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
)

// conditionalWrite is one kind of write that If-Match can make conditional.
type conditionalWrite struct {
	name    string
	method  string
	path    string
	body    func(i int) any // i makes each attempt distinct
	success int             // status when it applies to an existing session
	creates bool            // whether it creates an absent session
}

var conditionalWrites = []conditionalWrite{
	{"PUT session", http.MethodPut, "", func(i int) any { return fmt.Sprintf(`{"x":%d}`, i) }, http.StatusOK, true},
	{"PATCH session", http.MethodPatch, "", func(i int) any { return fmt.Sprintf(`{"x":{"y":%d}}`, i) }, http.StatusOK, true},
	{"POST messages", http.MethodPost, "/messages", func(i int) any { return msg(fmt.Sprintf("m%d", i), "user", "hi") }, http.StatusCreated, true},
	{"POST message batch", http.MethodPost, "/messages", func(i int) any {
		return map[string]any{"messages": []any{msg(fmt.Sprintf("b%d-0", i), "user", "a"), msg(fmt.Sprintf("b%d-1", i), "assistant", "b")}}
	}, http.StatusCreated, true},
	{"PUT field", http.MethodPut, "/state/f", func(i int) any { return fmt.Sprint(i) }, http.StatusOK, true},
	{"PUT pending-match", http.MethodPut, "/pending-match", func(i int) any { return fmt.Sprintf(`{"p":%d}`, i) }, http.StatusOK, true},
	{"DELETE field", http.MethodDelete, "/state/f", func(int) any { return nil }, http.StatusNoContent, false},
	{"DELETE pending-match", http.MethodDelete, "/pending-match", func(int) any { return nil }, http.StatusNoContent, false},
	{"DELETE session", http.MethodDelete, "", func(int) any { return nil }, http.StatusNoContent, false},
}

// seedForIfMatch creates a session that every conditional write can apply
// to and returns its version.
func seedForIfMatch(t *testing.T, n *node, id string) uint64 {
	t.Helper()
	r := n.do(http.MethodPut, sessionPath(id), `{"f":0,"pendingMatch":{"p":0}}`)
	wantStatus(t, r, http.StatusCreated)
	var doc sessionDoc
	decode(t, r, &doc)
	return doc.Version
}

// TestIfMatchWithTheCurrentVersionApplies covers every write: If-Match with
// the session's ETag applies the write and answers the new ETag.
func TestIfMatchWithTheCurrentVersionApplies(t *testing.T) {
	n := startNode(t)
	for i, w := range conditionalWrites {
		t.Run(w.name, func(t *testing.T) {
			id := fmt.Sprintf("ifmatch-ok-%d", i)
			v := seedForIfMatch(t, n, id)
			r := n.do(w.method, sessionPath(id, w.path), w.body(1), "If-Match", etagOf(v))
			wantStatus(t, r, w.success)
			if w.path == "" && w.method == http.MethodDelete {
				n.wantAbsent(id)
				return
			}
			_, doc := n.session(id)
			if doc.Version <= v {
				t.Fatalf("version %d did not advance past %d", doc.Version, v)
			}
			wantETag(t, r, doc.Version)
		})
	}
}

// TestIfMatchWithAStaleVersionIs412AndChangesNothing covers every write: a
// wrong version is a 412 version_mismatch carrying the current ETag, and
// the session is untouched.
func TestIfMatchWithAStaleVersionIs412AndChangesNothing(t *testing.T) {
	n := startNode(t)
	for i, w := range conditionalWrites {
		t.Run(w.name, func(t *testing.T) {
			id := fmt.Sprintf("ifmatch-stale-%d", i)
			v := seedForIfMatch(t, n, id)
			before := n.get(sessionPath(id))
			for j, stale := range []string{etagOf(v - 1), etagOf(v + 1000), `"0"`} {
				r := n.do(w.method, sessionPath(id, w.path), w.body(10+j), "If-Match", stale)
				wantError(t, r, http.StatusPreconditionFailed, "version_mismatch")
				wantETag(t, r, v)
				n.wantSame(id, before)
			}
		})
	}
}

// TestIfMatchZeroCreatesOnlyWhenAbsent covers "0" as "must not exist":
// writes that create a session do so under If-Match "0" once, and a second
// one is a 412; deletes of an absent session stay 404.
func TestIfMatchZeroCreatesOnlyWhenAbsent(t *testing.T) {
	n := startNode(t)
	for i, w := range conditionalWrites {
		t.Run(w.name, func(t *testing.T) {
			id := fmt.Sprintf("ifmatch-zero-%d", i)
			r := n.do(w.method, sessionPath(id, w.path), w.body(1), "If-Match", `"0"`)
			if !w.creates {
				wantError(t, r, http.StatusNotFound, "session_not_found")
				n.wantAbsent(id)
				return
			}
			wantStatus(t, r, http.StatusCreated)
			before, doc := n.session(id)
			wantETag(t, r, doc.Version)
			r = n.do(w.method, sessionPath(id, w.path), w.body(2), "If-Match", `"0"`)
			wantError(t, r, http.StatusPreconditionFailed, "version_mismatch")
			wantETag(t, r, doc.Version)
			n.wantSame(id, before)
		})
	}
}

// TestIfMatchOnAnAbsentSessionWithNonZeroVersionIs412 covers a condition on
// a session that does not exist (version 0): nothing is created.
func TestIfMatchOnAnAbsentSessionWithNonZeroVersionIs412(t *testing.T) {
	n := startNode(t)
	for i, w := range conditionalWrites {
		t.Run(w.name, func(t *testing.T) {
			id := fmt.Sprintf("ifmatch-absent-%d", i)
			r := n.do(w.method, sessionPath(id, w.path), w.body(1), "If-Match", `"7"`)
			wantError(t, r, http.StatusPreconditionFailed, "version_mismatch")
			if r.ETag() != "" {
				t.Fatalf("%s: ETag %s for an absent session", r, r.ETag())
			}
			n.wantAbsent(id)
		})
	}
}

// TestIfMatchAcceptsABareVersionNumber covers the lenient form 42 besides
// the ETag form "42".
func TestIfMatchAcceptsABareVersionNumber(t *testing.T) {
	n := startNode(t)
	id := "ifmatch-bare"
	v := seedForIfMatch(t, n, id)
	r := n.do(http.MethodPut, sessionPath(id), `{"x":1}`, "If-Match", fmt.Sprint(v))
	wantStatus(t, r, http.StatusOK)
	wantError(t, n.do(http.MethodPut, sessionPath(id), `{"x":2}`, "If-Match", fmt.Sprint(v)),
		http.StatusPreconditionFailed, "version_mismatch")
}

// TestReplayedAppendSucceedsWhateverIfMatchSays covers a client retrying a
// conditional append that already applied: the version has moved on, but
// the retry is answered with the stored message rather than a 412.
func TestReplayedAppendSucceedsWhateverIfMatchSays(t *testing.T) {
	n := startNode(t)
	id := "ifmatch-replay"
	v := seedForIfMatch(t, n, id)
	body := msg("m1", "user", "once")
	first := n.do(http.MethodPost, sessionPath(id, "/messages"), body, "If-Match", etagOf(v))
	wantStatus(t, first, http.StatusCreated)
	retry := n.do(http.MethodPost, sessionPath(id, "/messages"), body, "If-Match", etagOf(v))
	wantStatus(t, retry, http.StatusOK)
	if string(retry.Body) != string(first.Body) || retry.ETag() != first.ETag() {
		t.Fatalf("retry answered differently:\n%s\n%s", first, retry)
	}
	// A new message under the stale condition is still refused.
	wantError(t, n.do(http.MethodPost, sessionPath(id, "/messages"), msg("m2", "user", "two"), "If-Match", etagOf(v)),
		http.StatusPreconditionFailed, "version_mismatch")
	_, doc := n.session(id)
	if len(doc.Messages) != 1 {
		t.Fatalf("messages %+v", doc.Messages)
	}
}

// TestWritesCertainToFailAppendNoLogEntry: a conditional write whose
// If-Match no longer holds, and a delete of a field or session that does
// not exist, are answered from a linearizable read without proposing
// anything, so an attacker cannot grow the raft log with writes that fail.
// The same writes with a matching If-Match do append.
func TestWritesCertainToFailAppendNoLogEntry(t *testing.T) {
	n := startNode(t)
	for i, w := range conditionalWrites {
		if w.method == http.MethodPost {
			continue // a replayed append succeeds whatever If-Match says, so appends always go to raft
		}
		t.Run(w.name, func(t *testing.T) {
			id := fmt.Sprintf("precheck-%d", i)
			v := seedForIfMatch(t, n, id)
			before := n.raftIndex()
			r := n.do(w.method, sessionPath(id, w.path), w.body(1), "If-Match", etagOf(v+1))
			wantError(t, r, http.StatusPreconditionFailed, "version_mismatch")
			wantETag(t, r, v)
			if after := n.raftIndex(); after != before {
				t.Fatalf("a write refused for its If-Match moved the raft log from %d to %d", before, after)
			}
			r = n.do(w.method, sessionPath(id, w.path), w.body(2), "If-Match", etagOf(v))
			wantStatus(t, r, w.success)
			if n.raftIndex() == before {
				t.Fatal("a write with a matching If-Match appended nothing")
			}
		})
	}
	t.Run("DELETE of what does not exist", func(t *testing.T) {
		seedForIfMatch(t, n, "precheck-missing")
		before := n.raftIndex()
		wantError(t, n.do(http.MethodDelete, sessionPath("precheck-missing", "/state/nope"), nil), http.StatusNotFound, "field_not_found")
		wantError(t, n.do(http.MethodDelete, sessionPath("precheck-absent", "/state/f"), nil), http.StatusNotFound, "session_not_found")
		wantError(t, n.do(http.MethodDelete, sessionPath("precheck-absent"), nil), http.StatusNotFound, "session_not_found")
		if after := n.raftIndex(); after != before {
			t.Fatalf("deletes of missing things moved the raft log from %d to %d", before, after)
		}
	})
}
