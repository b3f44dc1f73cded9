package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestStateReturnsTheFieldsOnly covers GET …/state.
func TestStateReturnsTheFieldsOnly(t *testing.T) {
	n := startNode(t)
	id := "state"
	n.appendMsg(id, "m1", "not a field")
	r := n.get(sessionPath(id, "/state"))
	wantStatus(t, r, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != "{}" {
		t.Fatalf("state of a session without fields: %s", r.Body)
	}
	fields := `{"pendingMatch":{"id":"p1","score":0.5},"bookingInfo":{"when":"2025-01-01","seats":[1,2]},"lastSearchCriteria":"beach","flag":false,"n":-1.5e3,"nothing":[]}`
	wantStatus(t, n.do(http.MethodPut, sessionPath(id), fields), http.StatusOK)
	r = n.get(sessionPath(id, "/state"))
	wantStatus(t, r, http.StatusOK)
	if !jsonEqual(t, string(r.Body), fields) {
		t.Fatalf("state %s, want %s", r.Body, fields)
	}
	_, doc := n.session(id)
	wantETag(t, r, doc.Version)
	wantError(t, n.get(sessionPath("absent", "/state")), http.StatusNotFound, "session_not_found")
}

// TestPutFieldSetsOneFieldAndNullDeletesIt covers PUT …/state/{field}.
func TestPutFieldSetsOneFieldAndNullDeletesIt(t *testing.T) {
	n := startNode(t)
	id := "put-field"
	r := n.do(http.MethodPut, sessionPath(id, "/state/bookingInfo"), `{ "hotel" : "Ritz",  "nights": [1, 2] }`)
	wantStatus(t, r, http.StatusCreated)
	var f fieldResp
	decode(t, r, &f)
	wantETag(t, r, f.Version)
	if f.Name != "bookingInfo" || string(f.Value) != `{"hotel":"Ritz","nights":[1,2]}` {
		t.Fatalf("answer %s: values are stored compact", r.Body)
	}
	g := n.get(sessionPath(id, "/state/bookingInfo"))
	wantStatus(t, g, http.StatusOK)
	wantETag(t, g, f.Version)
	if strings.TrimSpace(string(g.Body)) != `{"hotel":"Ritz","nights":[1,2]}` {
		t.Fatalf("GET field %s", g.Body)
	}

	for _, v := range []string{`"text"`, `42`, `true`, `[1,{"a":null}]`, `{}`, `0.000001`} {
		r = n.do(http.MethodPut, sessionPath(id, "/state/bookingInfo"), v)
		wantStatus(t, r, http.StatusOK)
		decode(t, r, &f)
		if string(f.Value) != v {
			t.Fatalf("PUT %s answered value %s", v, f.Value)
		}
		if got := strings.TrimSpace(string(n.get(sessionPath(id, "/state/bookingInfo")).Body)); got != v {
			t.Fatalf("PUT %s reads back as %s", v, got)
		}
	}

	wantStatus(t, n.do(http.MethodPut, sessionPath(id, "/state/other"), `1`), http.StatusOK)
	r = n.do(http.MethodPut, sessionPath(id, "/state/bookingInfo"), `null`)
	wantStatus(t, r, http.StatusOK)
	decode(t, r, &f)
	if string(f.Value) != "null" {
		t.Fatalf("PUT null answered value %s", f.Value)
	}
	wantError(t, n.get(sessionPath(id, "/state/bookingInfo")), http.StatusNotFound, "field_not_found")
	st := n.get(sessionPath(id, "/state"))
	if !jsonEqual(t, string(st.Body), `{"other":1}`) {
		t.Fatalf("state after PUT null: %s", st.Body)
	}
}

// TestDeleteFieldAnswers204AndAMissingFieldIs404 covers DELETE and GET of
// …/state/{field}, and which 404 code a missing field or session gets.
func TestDeleteFieldAnswers204AndAMissingFieldIs404(t *testing.T) {
	n := startNode(t)
	id := "delete-field"
	wantStatus(t, n.do(http.MethodPut, sessionPath(id), `{"a":1,"b":2}`), http.StatusCreated)
	_, before := n.session(id)
	r := n.do(http.MethodDelete, sessionPath(id, "/state/a"), nil)
	wantStatus(t, r, http.StatusNoContent)
	if len(r.Body) != 0 {
		t.Fatalf("204 with body %q", r.Body)
	}
	got, after := n.session(id)
	wantETag(t, r, after.Version)
	if after.Version <= before.Version {
		t.Fatalf("delete did not advance the version")
	}
	wantFields(t, got, `{"b":2}`)
	wantError(t, n.get(sessionPath(id, "/state/a")), http.StatusNotFound, "field_not_found")

	r = n.do(http.MethodDelete, sessionPath(id, "/state/a"), nil)
	wantError(t, r, http.StatusNotFound, "field_not_found")
	wantETag(t, r, after.Version)
	n.wantSame(id, got)

	wantError(t, n.get(sessionPath("absent", "/state/a")), http.StatusNotFound, "session_not_found")
	wantError(t, n.do(http.MethodDelete, sessionPath("absent", "/state/a"), nil), http.StatusNotFound, "session_not_found")
	n.wantAbsent("absent")
}

// TestPendingMatchIsTheFieldPendingMatch covers the seed's alias route in
// both directions.
func TestPendingMatchIsTheFieldPendingMatch(t *testing.T) {
	n := startNode(t)
	id := "pending"
	wantError(t, n.get(sessionPath("absent", "/pending-match")), http.StatusNotFound, "session_not_found")
	r := n.do(http.MethodPut, sessionPath(id, "/pending-match"), `{"matchId":"x1","expires":123}`)
	wantStatus(t, r, http.StatusCreated)
	var f fieldResp
	decode(t, r, &f)
	wantETag(t, r, f.Version)
	if f.Name != "pendingMatch" {
		t.Fatalf("name %q, want pendingMatch", f.Name)
	}
	for _, p := range []string{"/pending-match", "/state/pendingMatch"} {
		g := n.get(sessionPath(id, p))
		wantStatus(t, g, http.StatusOK)
		if strings.TrimSpace(string(g.Body)) != `{"matchId":"x1","expires":123}` {
			t.Fatalf("%s: %s", p, g.Body)
		}
	}
	doc := n.get(sessionPath(id))
	wantFields(t, doc, `{"pendingMatch":{"matchId":"x1","expires":123}}`)

	wantStatus(t, n.do(http.MethodPut, sessionPath(id, "/state/pendingMatch"), `"via field"`), http.StatusOK)
	if g := n.get(sessionPath(id, "/pending-match")); strings.TrimSpace(string(g.Body)) != `"via field"` {
		t.Fatalf("alias reads %s", g.Body)
	}
	wantStatus(t, n.do(http.MethodPut, sessionPath(id), `{"pendingMatch":{"via":"put"}}`), http.StatusOK)
	if g := n.get(sessionPath(id, "/pending-match")); strings.TrimSpace(string(g.Body)) != `{"via":"put"}` {
		t.Fatalf("alias reads %s", g.Body)
	}

	wantStatus(t, n.do(http.MethodDelete, sessionPath(id, "/pending-match"), nil), http.StatusNoContent)
	wantError(t, n.get(sessionPath(id, "/pending-match")), http.StatusNotFound, "field_not_found")
	wantError(t, n.get(sessionPath(id, "/state/pendingMatch")), http.StatusNotFound, "field_not_found")
	wantError(t, n.do(http.MethodDelete, sessionPath(id, "/pending-match"), nil), http.StatusNotFound, "field_not_found")

	wantStatus(t, n.do(http.MethodPut, sessionPath(id, "/pending-match"), `1`), http.StatusOK)
	wantStatus(t, n.do(http.MethodPut, sessionPath(id, "/pending-match"), `null`), http.StatusOK)
	wantError(t, n.get(sessionPath(id, "/state/pendingMatch")), http.StatusNotFound, "field_not_found")
}

// TestFieldsOverTheSessionLimitAre413AndChangeNothing covers the 1 MiB
// field budget, both when one request is over it (refused before
// proposing) and when the session's total would go over it (refused by the
// state machine).
func TestFieldsOverTheSessionLimitAre413AndChangeNothing(t *testing.T) {
	n := startNode(t)
	id := "field-limit"
	wantStatus(t, n.do(http.MethodPut, sessionPath(id), `{"small":1}`), http.StatusCreated)
	before := n.get(sessionPath(id))

	huge := fmt.Sprintf(`"%s"`, strings.Repeat("x", 1<<20))
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPut, "", `{"big":` + huge + `}`},
		{http.MethodPatch, "", `{"big":` + huge + `}`},
		{http.MethodPut, "/state/big", huge},
		{http.MethodPut, "/pending-match", huge},
	} {
		idx := n.raftIndex()
		r := n.do(c.method, sessionPath(id, c.path), c.body)
		wantError(t, r, http.StatusRequestEntityTooLarge, "session_too_large")
		n.wantSame(id, before)
		if n.raftIndex() != idx {
			t.Fatalf("%s %s: an oversized request was proposed", c.method, c.path)
		}
	}

	// Two halves: the first fits, the second takes the total over.
	half := fmt.Sprintf(`"%s"`, strings.Repeat("y", 600<<10))
	wantStatus(t, n.do(http.MethodPut, sessionPath(id, "/state/h1"), half), http.StatusOK)
	before = n.get(sessionPath(id))
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPut, "/state/h2", half},
		{http.MethodPut, "", `{"h2":` + half + `}`},
		{http.MethodPatch, "", `{"h2":` + half + `}`},
	} {
		r := n.do(c.method, sessionPath(id, c.path), c.body)
		wantError(t, r, http.StatusRequestEntityTooLarge, "session_too_large")
		n.wantSame(id, before)
	}
	// Replacing the big field with another of the same size still fits.
	wantStatus(t, n.do(http.MethodPut, sessionPath(id, "/state/h1"), half), http.StatusOK)
}

// TestFieldNamesInThePathMustBeUTF8 covers a field name only the path can
// carry: bytes that are not UTF-8. Stored, such a name would render as
// U+FFFD, so GET /state could show two members with the same name and the
// field could not be addressed by the name it is shown under.
func TestFieldNamesInThePathMustBeUTF8(t *testing.T) {
	n := startNode(t)
	id := "utf8-names"
	wantStatus(t, n.do(http.MethodPut, sessionPath(id, "/state/%EF%BF%BD"), `1`), http.StatusCreated)
	before := n.get(sessionPath(id))
	for _, method := range []string{http.MethodPut, http.MethodGet, http.MethodDelete} {
		var body any
		if method == http.MethodPut {
			body = `2`
		}
		wantError(t, n.do(method, sessionPath(id, "/state/%FF"), body), http.StatusBadRequest, "invalid_field_name")
		wantError(t, n.do(method, sessionPath(id, "/state/a%C3"), body), http.StatusBadRequest, "invalid_field_name")
	}
	n.wantSame(id, before)
	st := n.get(sessionPath(id, "/state"))
	if strings.TrimSpace(string(st.Body)) != "{\"\uFFFD\":1}" {
		t.Fatalf("state %s", st.Body)
	}
	// Non-ASCII UTF-8 names are fine.
	wantStatus(t, n.do(http.MethodPut, sessionPath(id, "/state/caf%C3%A9"), `3`), http.StatusOK)
	if g := n.get(sessionPath(id, "/state/caf%C3%A9")); strings.TrimSpace(string(g.Body)) != "3" {
		t.Fatalf("café reads %s", g.Body)
	}
}

// TestEscapedPathSegmentsNameWhatTheyDecodeTo: a client that escapes a
// session id or field name in the path (as URL libraries do for @, : or /)
// reaches the same session and field as one that does not.
func TestEscapedPathSegmentsNameWhatTheyDecodeTo(t *testing.T) {
	n := startNode(t)
	n.appendMsg("user@example.com", "m1", "hi")
	// %2F keeps net/http's raw path, so every parameter comes escaped.
	r := n.do(http.MethodPut, sessionPath("user%40example.com", "/state/a%2Fb"), `{"x":1}`)
	wantStatus(t, r, http.StatusOK)
	var fields map[string]json.RawMessage
	decode(t, n.get(sessionPath("user@example.com", "/state")), &fields)
	if string(fields["a/b"]) != `{"x":1}` {
		t.Fatalf("field a/b = %s; fields: %v", fields["a/b"], fields)
	}
	r = n.get(sessionPath("user%40example.com", "/state/a%2Fb"))
	wantStatus(t, r, http.StatusOK)
}
