package httpapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestPutCreatesWith201ThenMergesTopLevelWith200 covers PUT
// /api/chat/session/{id}: it creates an absent session (201), merges
// top-level fields into an existing one (200), deletes a field given null,
// and answers the same document GET then serves.
func TestPutCreatesWith201ThenMergesTopLevelWith200(t *testing.T) {
	n := startNode(t)
	id := "put-merge"
	r := n.do(http.MethodPut, sessionPath(id), `{"a":1,"b":{"x":1,"y":2},"c":"keep"}`)
	wantStatus(t, r, http.StatusCreated)
	var created sessionDoc
	decode(t, r, &created)
	wantETag(t, r, created.Version)
	if got, want := r.Header.Get("X-Sessiond-Shard"), fmt.Sprint(n.host.ShardFor(id)); got != want {
		t.Fatalf("X-Sessiond-Shard %q, want %q", got, want)
	}
	if created.ID != id || created.Version == 0 || created.CreatedAt == 0 ||
		created.UpdatedAt != created.CreatedAt || created.LastAccessedAt != created.UpdatedAt || created.Messages == nil || len(created.Messages) != 0 {
		t.Fatalf("created document %+v", created)
	}
	if !bytes.Contains(r.Body, []byte(`"messages":[]`)) {
		t.Fatalf("an empty session must render messages as [], got %s", r.Body)
	}
	got, _ := n.session(id)
	if !bytes.Equal(got.Body, r.Body) {
		t.Fatalf("GET differs from the PUT answer:\nPUT %s\nGET %s", r.Body, got.Body)
	}

	// b is replaced as a whole (top-level merge, not a deep one); c stays.
	r = n.do(http.MethodPut, sessionPath(id), `{"b":{"z":3},"d":[1,2]}`)
	wantStatus(t, r, http.StatusOK)
	var updated sessionDoc
	decode(t, r, &updated)
	wantETag(t, r, updated.Version)
	if updated.Version <= created.Version || updated.CreatedAt != created.CreatedAt || updated.UpdatedAt < created.UpdatedAt {
		t.Fatalf("after update %+v, before %+v", updated, created)
	}
	wantFields(t, r, `{"a":1,"b":{"z":3},"c":"keep","d":[1,2]}`)

	// null deletes at the top level.
	r = n.do(http.MethodPut, sessionPath(id), `{"a":null,"c":null}`)
	wantStatus(t, r, http.StatusOK)
	wantFields(t, r, `{"b":{"z":3},"d":[1,2]}`)
	got, _ = n.session(id)
	if !bytes.Equal(got.Body, r.Body) {
		t.Fatalf("GET differs from the PUT answer:\nPUT %s\nGET %s", r.Body, got.Body)
	}
}

// TestPatchIsAnRFC7396MergePatch covers PATCH: nested objects merge, a
// nested null removes a member, arrays and scalars are replaced, and a
// top-level null removes a field.
func TestPatchIsAnRFC7396MergePatch(t *testing.T) {
	n := startNode(t)
	id := "patch"
	r := n.do(http.MethodPatch, sessionPath(id), `{"prefs":{"lang":"en","theme":"dark","deep":{"x":1,"y":2}},"keep":true,"arr":[1,2]}`)
	wantStatus(t, r, http.StatusCreated)
	var first sessionDoc
	decode(t, r, &first)
	wantETag(t, r, first.Version)

	r = n.do(http.MethodPatch, sessionPath(id), `{"prefs":{"theme":null,"deep":{"y":3,"z":[1,2]}},"arr":[9],"new":"v"}`)
	wantStatus(t, r, http.StatusOK)
	var second sessionDoc
	decode(t, r, &second)
	wantETag(t, r, second.Version)
	if second.Version <= first.Version {
		t.Fatalf("version did not advance: %d then %d", first.Version, second.Version)
	}
	want := `{"prefs":{"lang":"en","deep":{"x":1,"y":3,"z":[1,2]}},"keep":true,"arr":[9],"new":"v"}`
	wantFields(t, r, want)
	got, _ := n.session(id)
	wantFields(t, got, want)

	r = n.do(http.MethodPatch, sessionPath(id), `{"keep":null,"prefs":{"deep":null},"missing":null}`)
	wantStatus(t, r, http.StatusOK)
	wantFields(t, r, `{"prefs":{"lang":"en"},"arr":[9],"new":"v"}`)

	// A patch that replaces an object with a scalar and back.
	r = n.do(http.MethodPatch, sessionPath(id), `{"prefs":"flat"}`)
	wantStatus(t, r, http.StatusOK)
	r = n.do(http.MethodPatch, sessionPath(id), `{"prefs":{"a":{"b":null,"c":1}}}`)
	wantStatus(t, r, http.StatusOK)
	wantFields(t, r, `{"prefs":{"a":{"c":1}},"arr":[9],"new":"v"}`)
}

// TestDeleteSessionAnswers204AndThenEveryReadIs404 covers DELETE: 204 with
// no body, then the session and all of its sub-resources are gone, a second
// delete is a 404, and the id can be used afresh (its message ids too).
func TestDeleteSessionAnswers204AndThenEveryReadIs404(t *testing.T) {
	n := startNode(t)
	id := "to-delete"
	n.appendMsg(id, "m1", "hello")
	wantStatus(t, n.do(http.MethodPut, sessionPath(id, "/state/f"), `1`), http.StatusOK)

	r := n.do(http.MethodDelete, sessionPath(id), nil)
	wantStatus(t, r, http.StatusNoContent)
	if len(r.Body) != 0 {
		t.Fatalf("204 with a body: %q", r.Body)
	}
	if r.Header.Get("X-Sessiond-Shard") == "" {
		t.Fatalf("%s: no X-Sessiond-Shard", r)
	}
	n.wantAbsent(id)
	for _, p := range []string{"/messages", "/state", "/state/f", "/pending-match"} {
		wantError(t, n.get(sessionPath(id, p)), http.StatusNotFound, "session_not_found")
	}
	wantError(t, n.do(http.MethodDelete, sessionPath(id), nil), http.StatusNotFound, "session_not_found")
	wantError(t, n.do(http.MethodDelete, sessionPath(id, "/state/f"), nil), http.StatusNotFound, "session_not_found")

	// The session id is free again and seq restarts at 1, but the deleted
	// session's message ids stay reserved: a late retry of the old append
	// must not bring its message back.
	wantError(t, n.do(http.MethodPost, sessionPath(id, "/messages"),
		[]byte(`{"messages":[{"id":"m1","role":"user","content":"another text"}]}`)), http.StatusConflict, "id_conflict")
	n.wantAbsent(id)
	a := n.appendMsg(id, "m9", "another text")
	if a.Messages[0].Seq != 1 || a.Messages[0].Content != "another text" {
		t.Fatalf("append after delete: %+v", a)
	}
	_, doc := n.session(id)
	if len(doc.Messages) != 1 {
		t.Fatalf("session after delete and append: %+v", doc)
	}
	if strings.Contains(string(n.get(sessionPath(id)).Body), `"f"`) {
		t.Fatalf("field survived the delete")
	}
}

// TestSessionIDsUpTo256BytesOfTheAllowedAlphabetWork covers the valid edge
// of the session id rule.
func TestSessionIDsUpTo256BytesOfTheAllowedAlphabetWork(t *testing.T) {
	n := startNode(t)
	for _, id := range []string{
		"a", strings.Repeat("x", 256), "user@example.com:chat-1_v2.0", "ABC-xyz.0_9:@",
	} {
		r := n.do(http.MethodPut, sessionPath(id), `{"k":1}`)
		wantStatus(t, r, http.StatusCreated)
		_, doc := n.session(id)
		if doc.ID != id {
			t.Fatalf("id %q read back as %q", id, doc.ID)
		}
	}
}

// TestReadsCarryETagShardAndAppliedIndexAtEveryConsistency reads every read
// route at every consistency level: all answer 200 with the same body, the
// session's ETag, its shard and an applied index at least its version.
func TestReadsCarryETagShardAndAppliedIndexAtEveryConsistency(t *testing.T) {
	n := startNode(t)
	id := "reads"
	for i := 0; i < 20; i++ {
		n.appendMsg(id, fmt.Sprintf("m%d", i), fmt.Sprintf("message %d", i))
	}
	wantStatus(t, n.do(http.MethodPut, sessionPath(id), `{"pendingMatch":{"score":0.9},"bookingInfo":"b"}`), http.StatusOK)
	_, doc := n.session(id)
	shardID := fmt.Sprint(n.host.ShardFor(id))

	for _, path := range []string{"", "/messages", "/messages?limit=5&after=3", "/state", "/state/bookingInfo", "/pending-match"} {
		var first []byte
		for _, level := range []string{"", "linearizable", "leader", "stale"} {
			p := sessionPath(id, path)
			if level != "" {
				sep := "?"
				if strings.Contains(p, "?") {
					sep = "&"
				}
				p += sep + "consistency=" + level
			}
			r := n.get(p)
			wantStatus(t, r, http.StatusOK)
			wantETag(t, r, doc.Version)
			if got := r.Header.Get("X-Sessiond-Shard"); got != shardID {
				t.Fatalf("%s: X-Sessiond-Shard %q, want %s", r, got, shardID)
			}
			applied, err := strconv.ParseUint(r.Header.Get("X-Sessiond-Applied-Index"), 10, 64)
			if err != nil || applied < doc.Version {
				t.Fatalf("%s: X-Sessiond-Applied-Index %q, want ≥ %d", r, r.Header.Get("X-Sessiond-Applied-Index"), doc.Version)
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("%s: Content-Type %q", r, ct)
			}
			if first == nil {
				first = r.Body
			} else if !bytes.Equal(first, r.Body) {
				t.Fatalf("%s differs by consistency:\n%s\n%s", p, first, r.Body)
			}
		}
	}
}

// TestEveryWriteAnswersTheETagOfItsNewVersion checks the ETag of every
// successful write against the version a following GET reports.
func TestEveryWriteAnswersTheETagOfItsNewVersion(t *testing.T) {
	n := startNode(t)
	id := "etags"
	writes := []struct {
		method, path, body string
		status             int
	}{
		{http.MethodPut, "", `{"a":1}`, http.StatusCreated},
		{http.MethodPatch, "", `{"b":{"c":1}}`, http.StatusOK},
		{http.MethodPost, "/messages", `{"id":"m1","role":"user","content":"hi"}`, http.StatusCreated},
		{http.MethodPost, "/messages", `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`, http.StatusCreated},
		{http.MethodPut, "/state/f", `"v"`, http.StatusOK},
		{http.MethodPut, "/pending-match", `{"m":1}`, http.StatusOK},
		{http.MethodDelete, "/state/f", ``, http.StatusNoContent},
		{http.MethodDelete, "/pending-match", ``, http.StatusNoContent},
	}
	var last uint64
	for _, w := range writes {
		var body any
		if w.body != "" {
			body = w.body
		}
		r := n.do(w.method, sessionPath(id, w.path), body)
		wantStatus(t, r, w.status)
		_, doc := n.session(id)
		wantETag(t, r, doc.Version)
		if doc.Version <= last {
			t.Fatalf("%s: version %d did not advance past %d", r, doc.Version, last)
		}
		last = doc.Version
		if w.status != http.StatusNoContent {
			var v struct{ Version uint64 }
			decode(t, r, &v)
			if v.Version != doc.Version {
				t.Fatalf("%s: body version %d, session version %d", r, v.Version, doc.Version)
			}
		}
	}
}

// wantFields compares the fields of a session document with want (JSON).
func wantFields(t *testing.T, r *response, want string) {
	t.Helper()
	fields := fieldsOf(t, r)
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	for k, v := range fields {
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, "%q:%s", k, v)
	}
	b.WriteByte('}')
	if !jsonEqual(t, b.String(), want) {
		t.Fatalf("%s: fields %s, want %s", r, b.String(), want)
	}
}
