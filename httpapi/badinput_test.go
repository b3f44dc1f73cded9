package httpapi_test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"strings"
	"testing"
)

const (
	seeded = "seeded" // exists, with a message and fields
	fresh  = "fresh"  // never exists
)

type badCase struct {
	name   string
	method string
	path   string
	body   any
	hdr    []string
	status int
	code   string
}

func badCases() []badCase {
	long := strings.Repeat("a", 257)
	hugeBody := `{"role":"user","content":"` + strings.Repeat("x", 2<<20) + `"}`
	tooLong := `{"role":"user","content":"` + strings.Repeat("x", 64<<10+1) + `"}`
	bigBatch := make([]any, 1001)
	for i := range bigBatch {
		bigBatch[i] = msg(fmt.Sprintf("b%d", i), "user", "x")
	}
	s, f := sessionPath(seeded), sessionPath(fresh)
	sm, fm := sessionPath(seeded, "/messages"), sessionPath(fresh, "/messages")
	const (
		B400 = http.StatusBadRequest
		B404 = http.StatusNotFound
		B405 = http.StatusMethodNotAllowed
		B413 = http.StatusRequestEntityTooLarge
	)
	cases := []badCase{
		// Session ids.
		{"id with a bang", "GET", sessionPath("bad!id"), nil, nil, B400, "invalid_session_id"},
		{"id with a comma, PUT", "PUT", sessionPath("bad,id"), `{"a":1}`, nil, B400, "invalid_session_id"},
		{"id with a space", "GET", "/api/chat/session/a%20b", nil, nil, B400, "invalid_session_id"},
		{"id with an encoded slash", "PUT", "/api/chat/session/a%2Fb", `{"a":1}`, nil, B400, "invalid_session_id"},
		{"id with non-ASCII", "PUT", "/api/chat/session/caf%C3%A9", `{"a":1}`, nil, B400, "invalid_session_id"},
		{"id of 257 bytes, append", "POST", sessionPath(long, "/messages"), msg("m", "user", "x"), nil, B400, "invalid_session_id"},
		{"id of 257 bytes, PUT", "PUT", sessionPath(long), `{"a":1}`, nil, B400, "invalid_session_id"},
		{"id of 257 bytes, GET", "GET", sessionPath(long), nil, nil, B400, "invalid_session_id"},
		{"bad id, state", "GET", sessionPath("bad!id", "/state"), nil, nil, B400, "invalid_session_id"},
		{"bad id, field", "PUT", sessionPath("bad!id", "/state/f"), `1`, nil, B400, "invalid_session_id"},
		{"bad id, delete", "DELETE", sessionPath("bad!id"), nil, nil, B400, "invalid_session_id"},
		{"bad id, owner", "GET", "/v1/sessions/bad!id/owner", nil, nil, B400, "invalid_session_id"},

		// Bodies that are not JSON.
		{"truncated JSON, append", "POST", sm, `{"role":`, nil, B400, "invalid_json"},
		{"truncated JSON, PUT", "PUT", s, `{`, nil, B400, "invalid_json"},
		{"bare word, PATCH", "PATCH", s, `nope`, nil, B400, "invalid_json"},
		{"bad object, field", "PUT", sessionPath(seeded, "/state/f"), `{bad}`, nil, B400, "invalid_json"},
		{"bad literal, pending-match", "PUT", sessionPath(seeded, "/pending-match"), `tru`, nil, B400, "invalid_json"},
		{"trailing garbage", "PUT", s, `{"a":1} x`, nil, B400, "invalid_json"},
		{"two values", "POST", sm, `{"role":"user","content":"a"}{"role":"user","content":"b"}`, nil, B400, "invalid_json"},
		{"empty body, append", "POST", sm, ``, nil, B400, "invalid_json"},
		{"no body, append", "POST", fm, nil, nil, B400, "invalid_json"},
		{"empty body, PUT", "PUT", s, ``, nil, B400, "invalid_json"},
		{"blank body, PATCH", "PATCH", s, " \n\t ", nil, B400, "invalid_json"},
		{"empty body, field", "PUT", sessionPath(seeded, "/state/f"), ``, nil, B400, "invalid_json"},
		{"no body, PUT fresh", "PUT", f, nil, nil, B400, "invalid_json"},

		// Messages of the wrong shape.
		{"content a number", "POST", sm, `{"role":"user","content":5}`, nil, B400, "invalid_message"},
		{"content an object", "POST", fm, `{"role":"user","content":{"t":"x"}}`, nil, B400, "invalid_message"},
		{"role a number", "POST", sm, `{"role":7,"content":"x"}`, nil, B400, "invalid_message"},
		{"id a number", "POST", sm, `{"id":5,"role":"user","content":"x"}`, nil, B400, "invalid_message"},
		{"id empty", "POST", sm, `{"id":"","role":"user","content":"x"}`, nil, B400, "invalid_message"},
		{"id of 257 bytes", "POST", sm, msg(long, "user", "x"), nil, B400, "invalid_message"},
		{"role missing", "POST", sm, `{"content":"x"}`, nil, B400, "invalid_message"},
		{"role null", "POST", sm, `{"role":null,"content":"x"}`, nil, B400, "invalid_message"},
		{"role empty", "POST", sm, `{"role":"","content":"x"}`, nil, B400, "invalid_message"},
		{"role of 65 bytes", "POST", sm, msg("", strings.Repeat("r", 65), "x"), nil, B400, "invalid_message"},
		{"content missing", "POST", fm, `{"role":"user"}`, nil, B400, "invalid_message"},
		{"empty object", "POST", fm, `{}`, nil, B400, "invalid_message"},
		{"messages an object", "POST", sm, `{"messages":{"role":"user","content":"x"}}`, nil, B400, "invalid_message"},
		{"messages a string", "POST", sm, `{"messages":"x"}`, nil, B400, "invalid_message"},
		{"messages null", "POST", sm, `{"messages":null}`, nil, B400, "invalid_message"},
		{"messages of numbers", "POST", sm, `{"messages":[1]}`, nil, B400, "invalid_message"},
		{"messages with null", "POST", sm, `{"messages":[null]}`, nil, B400, "invalid_message"},
		{"messages empty", "POST", fm, `{"messages":[]}`, nil, B400, "invalid_message"},
		{"batch with one bad message", "POST", sm, `{"messages":[{"id":"ok","role":"user","content":"x"},{"role":"","content":"y"}]}`, nil, B400, "invalid_message"},
		{"body an array", "POST", sm, `[{"role":"user","content":"x"}]`, nil, B400, "invalid_message"},
		{"body a string", "POST", sm, `"hello"`, nil, B400, "invalid_message"},
		{"body null", "POST", fm, `null`, nil, B400, "invalid_message"},
		{"idempotency key of 249 bytes", "POST", sm, `{"role":"user","content":"x"}`, []string{"Idempotency-Key", strings.Repeat("k", 249)}, B400, "invalid_message"},

		// Field writes of the wrong shape.
		{"PUT an array", "PUT", s, `[{"a":1}]`, nil, B400, "invalid_fields"},
		{"PUT a string", "PUT", s, `"a"`, nil, B400, "invalid_fields"},
		{"PUT null", "PUT", f, `null`, nil, B400, "invalid_fields"},
		{"PUT a number", "PUT", f, `5`, nil, B400, "invalid_fields"},
		{"PATCH an array", "PATCH", s, `[1]`, nil, B400, "invalid_fields"},
		{"PATCH a string", "PATCH", f, `"x"`, nil, B400, "invalid_fields"},
		{"PUT messages", "PUT", s, `{"messages":[]}`, nil, B400, "messages_not_allowed"},
		{"PUT messages with fields", "PUT", s, `{"ok":1,"messages":[{"role":"user","content":"x"}]}`, nil, B400, "messages_not_allowed"},
		{"PUT messages fresh", "PUT", f, `{"messages":[{"role":"user","content":"x"}]}`, nil, B400, "messages_not_allowed"},
		{"PATCH messages", "PATCH", s, `{"messages":null}`, nil, B400, "messages_not_allowed"},
		{"PUT id", "PUT", s, `{"id":"other"}`, nil, B400, "invalid_field_name"},
		{"PUT version", "PUT", s, `{"version":1}`, nil, B400, "invalid_field_name"},
		{"PUT createdAt", "PUT", f, `{"createdAt":1}`, nil, B400, "invalid_field_name"},
		{"PUT updatedAt", "PUT", s, `{"updatedAt":1}`, nil, B400, "invalid_field_name"},
		{"PUT lastAccessedAt with a good field", "PUT", s, `{"ok":1,"lastAccessedAt":1}`, nil, B400, "invalid_field_name"},
		{"PUT empty name", "PUT", s, `{"":1}`, nil, B400, "invalid_field_name"},
		{"PUT name of 257 bytes", "PUT", s, `{"` + long + `":1}`, nil, B400, "invalid_field_name"},
		{"PATCH id null", "PATCH", s, `{"id":null}`, nil, B400, "invalid_field_name"},
		{"PATCH version", "PATCH", f, `{"version":{"a":1}}`, nil, B400, "invalid_field_name"},
		{"PUT field version", "PUT", sessionPath(seeded, "/state/version"), `1`, nil, B400, "invalid_field_name"},
		{"PUT field id fresh", "PUT", sessionPath(fresh, "/state/id"), `1`, nil, B400, "invalid_field_name"},
		{"GET field createdAt", "GET", sessionPath(seeded, "/state/createdAt"), nil, nil, B400, "invalid_field_name"},
		{"DELETE field messages", "DELETE", sessionPath(seeded, "/state/messages"), nil, nil, B400, "invalid_field_name"},
		{"PUT field of 257 bytes", "PUT", sessionPath(seeded, "/state/"+long), `1`, nil, B400, "invalid_field_name"},

		// Sizes.
		{"content of 64 KiB + 1", "POST", sm, tooLong, nil, B413, "content_too_large"},
		{"content too large fresh", "POST", fm, tooLong, nil, B413, "content_too_large"},
		{"batch with one content too large", "POST", sm, `{"messages":[{"role":"user","content":"ok"},` + tooLong + `]}`, nil, B413, "content_too_large"},
		{"meta over 16 KiB", "POST", sm, map[string]any{"role": "user", "content": "x", "meta": strings.Repeat("m", 16<<10)}, nil, B413, "content_too_large"},
		{"body over 2 MiB, append", "POST", sm, hugeBody, nil, B413, "body_too_large"},
		{"body over 2 MiB, PUT", "PUT", s, `{"a":"` + strings.Repeat("x", 2<<20) + `"}`, nil, B413, "body_too_large"},
		{"body over 2 MiB, PATCH", "PATCH", f, `{"a":"` + strings.Repeat("x", 2<<20) + `"}`, nil, B413, "body_too_large"},
		{"body over 2 MiB, field", "PUT", sessionPath(seeded, "/state/f"), `"` + strings.Repeat("x", 2<<20) + `"`, nil, B413, "body_too_large"},
		{"batch of 1001", "POST", sm, map[string]any{"messages": bigBatch}, nil, B400, "too_many_messages"},

		// Query parameters.
		{"consistency strong", "GET", sessionPath(seeded) + "?consistency=strong", nil, nil, B400, "invalid_consistency"},
		{"consistency upper case", "GET", sm + "?consistency=LINEARIZABLE", nil, nil, B400, "invalid_consistency"},
		{"consistency on state", "GET", sessionPath(seeded, "/state") + "?consistency=eventual", nil, nil, B400, "invalid_consistency"},
		{"consistency on field", "GET", sessionPath(seeded, "/state/f") + "?consistency=1", nil, nil, B400, "invalid_consistency"},
		{"consistency on pending-match", "GET", sessionPath(seeded, "/pending-match") + "?consistency=x", nil, nil, B400, "invalid_consistency"},
		{"consistency on an absent session", "GET", sessionPath(fresh) + "?consistency=x", nil, nil, B400, "invalid_consistency"},
		{"limit 0", "GET", sm + "?limit=0", nil, nil, B400, "invalid_limit"},
		{"limit -1", "GET", sm + "?limit=-1", nil, nil, B400, "invalid_limit"},
		{"limit abc", "GET", sm + "?limit=abc", nil, nil, B400, "invalid_limit"},
		{"limit 1001", "GET", sm + "?limit=1001", nil, nil, B400, "invalid_limit"},
		{"limit huge", "GET", sm + "?limit=99999999999999999999999", nil, nil, B400, "invalid_limit"},
		{"limit 1.5", "GET", sm + "?limit=1.5", nil, nil, B400, "invalid_limit"},
		{"limit on an absent session", "GET", fm + "?limit=0", nil, nil, B400, "invalid_limit"},
		{"after -1", "GET", sm + "?after=-1", nil, nil, B400, "invalid_after"},
		{"after abc", "GET", sm + "?after=abc", nil, nil, B400, "invalid_after"},
		{"after huge", "GET", sm + "?after=99999999999999999999999", nil, nil, B400, "invalid_after"},

		// If-Match.
		{"If-Match abc, PUT", "PUT", s, `{"a":2}`, []string{"If-Match", "abc"}, B400, "invalid_if_match"},
		{"If-Match abc, PATCH", "PATCH", s, `{"a":2}`, []string{"If-Match", `"abc"`}, B400, "invalid_if_match"},
		{"If-Match abc, DELETE", "DELETE", s, nil, []string{"If-Match", "abc"}, B400, "invalid_if_match"},
		{"If-Match abc, append", "POST", sm, msg("new", "user", "x"), []string{"If-Match", "abc"}, B400, "invalid_if_match"},
		{"If-Match abc, append fresh", "POST", fm, msg("new", "user", "x"), []string{"If-Match", "abc"}, B400, "invalid_if_match"},
		{"If-Match abc, field", "PUT", sessionPath(seeded, "/state/f"), `2`, []string{"If-Match", "abc"}, B400, "invalid_if_match"},
		{"If-Match abc, delete field", "DELETE", sessionPath(seeded, "/state/f"), nil, []string{"If-Match", "abc"}, B400, "invalid_if_match"},
		{"If-Match abc, pending-match", "PUT", sessionPath(seeded, "/pending-match"), `2`, []string{"If-Match", "abc"}, B400, "invalid_if_match"},
		{"If-Match -1", "PUT", s, `{"a":2}`, []string{"If-Match", `"-1"`}, B400, "invalid_if_match"},
		{"If-Match list", "PUT", s, `{"a":2}`, []string{"If-Match", `"1", "2"`}, B400, "invalid_if_match"},

		// Routes and methods.
		{"unknown route", "GET", "/nope", nil, nil, B404, "not_found"},
		{"unknown session sub-route", "GET", sessionPath(seeded, "/nope"), nil, nil, B404, "not_found"},
		{"unknown v1 route", "GET", "/v1/nope", nil, nil, B404, "not_found"},
		{"no session id", "GET", "/api/chat/session/", nil, nil, B404, "not_found"},
		{"session collection", "GET", "/api/chat/session", nil, nil, B404, "not_found"},
		{"POST session", "POST", s, `{"a":1}`, nil, B405, "method_not_allowed"},
		{"POST fresh session", "POST", f, `{"a":1}`, nil, B405, "method_not_allowed"},
		{"PUT on the messages route", "PUT", sm, `{"role":"user","content":"x"}`, nil, B405, "method_not_allowed"},
		{"DELETE messages", "DELETE", sm, nil, nil, B405, "method_not_allowed"},
		{"POST state", "POST", sessionPath(seeded, "/state"), `{"a":1}`, nil, B405, "method_not_allowed"},
		{"PATCH field", "PATCH", sessionPath(seeded, "/state/f"), `1`, nil, B405, "method_not_allowed"},
		{"POST pending-match", "POST", sessionPath(seeded, "/pending-match"), `1`, nil, B405, "method_not_allowed"},
		{"POST healthz", "POST", "/healthz", nil, nil, B405, "method_not_allowed"},
		{"DELETE readyz", "DELETE", "/readyz", nil, nil, B405, "method_not_allowed"},
		{"DELETE cluster", "DELETE", "/v1/cluster", nil, nil, B405, "method_not_allowed"},
		{"PUT owner", "PUT", "/v1/sessions/" + seeded + "/owner", `{}`, nil, B405, "method_not_allowed"},
	}
	return cases
}

// TestBadInputIsRejectedWithItsCodeAndWritesNothing sends every kind of bad
// request and checks the status, the error code, that nothing was proposed
// to raft, and that neither the existing nor the absent session changed.
func TestBadInputIsRejectedWithItsCodeAndWritesNothing(t *testing.T) {
	n := startNode(t)
	wantStatus(t, n.do(http.MethodPut, sessionPath(seeded), `{"a":1,"f":1,"pendingMatch":{"x":1}}`), http.StatusCreated)
	n.appendMsg(seeded, "m1", "hello")
	for _, c := range badCases() {
		t.Run(c.name, func(t *testing.T) {
			before := n.get(sessionPath(seeded))
			idx := n.raftIndex()
			r := n.do(c.method, c.path, c.body, c.hdr...)
			wantError(t, r, c.status, c.code)
			if strings.HasPrefix(c.path, "/api/chat/session/") && c.status != http.StatusNotFound &&
				c.status != http.StatusMethodNotAllowed && c.code != "invalid_session_id" && r.Header.Get("X-Sessiond-Shard") == "" {
				t.Errorf("%s: no X-Sessiond-Shard", r)
			}
			if got := n.raftIndex(); got != idx {
				t.Errorf("%s: raft index moved from %d to %d: the request was proposed", r, idx, got)
			}
			n.wantSame(seeded, before)
			n.wantAbsent(fresh)
		})
	}
}

// TestHeadAndOptionsAreAnsweredWithoutAServerError covers the methods echo
// answers itself.
func TestHeadAndOptionsAreAnsweredWithoutAServerError(t *testing.T) {
	n := startNode(t)
	wantStatus(t, n.do(http.MethodPut, sessionPath(seeded), `{"a":1}`), http.StatusCreated)
	r := n.do(http.MethodHead, sessionPath(seeded), nil)
	wantStatus(t, r, http.StatusMethodNotAllowed)
	r = n.do(http.MethodOptions, sessionPath(seeded), nil)
	wantStatus(t, r, http.StatusNoContent)
	if allow := r.Header.Get("Allow"); !strings.Contains(allow, "PATCH") || !strings.Contains(allow, "DELETE") {
		t.Fatalf("%s: Allow %q", r, allow)
	}
}

// TestGarbageRequestsNeverAnswer500 throws random bodies, headers and
// query strings at every route. Whatever happens, the answer is never a
// server error, and every error is the JSON error model.
func TestGarbageRequestsNeverAnswer500(t *testing.T) {
	n := startNode(t)
	rng := rand.New(rand.NewSource(1))
	routes := []struct{ method, path string }{
		{"GET", ""}, {"PUT", ""}, {"PATCH", ""}, {"DELETE", ""},
		{"POST", "/messages"}, {"GET", "/messages"}, {"GET", "/state"},
		{"GET", "/state/f"}, {"PUT", "/state/f"}, {"DELETE", "/state/f"},
		{"GET", "/pending-match"}, {"PUT", "/pending-match"}, {"DELETE", "/pending-match"},
	}
	pieces := []string{`{`, `}`, `[`, `]`, `"`, `:`, `,`, `null`, `1`, `-0.5e9`, `"role"`, `"content"`, `"messages"`,
		`"id"`, `"meta"`, `"user"`, `true`, "\x00", "\xff", `\u0000`, `"\ud800"`, ` `, `"version"`, `{"role":"u","content":"c"}`}
	queries := []string{"", "?consistency=stale", "?consistency=%00", "?limit=5&after=1", "?limit=&after=", "?after=18446744073709551615", "?limit=%ff"}
	ifMatch := []string{"", `"1"`, `W/"2"`, "*", `""`, "1, 2", `"18446744073709551616"`}
	for i := 0; i < 400; i++ {
		rt := routes[rng.Intn(len(routes))]
		var b strings.Builder
		for j := rng.Intn(12); j > 0; j-- {
			b.WriteString(pieces[rng.Intn(len(pieces))])
		}
		var body any
		if rt.method != "GET" && rt.method != "DELETE" {
			body = b.String()
		}
		path := sessionPath(fmt.Sprintf("fuzz%d", rng.Intn(3)), rt.path) + queries[rng.Intn(len(queries))]
		var hdr []string
		if im := ifMatch[rng.Intn(len(ifMatch))]; im != "" {
			hdr = append(hdr, "If-Match", im)
		}
		if rng.Intn(4) == 0 {
			hdr = append(hdr, "Idempotency-Key", fmt.Sprint(rng.Intn(5)))
		}
		r := n.do(rt.method, path, body, hdr...)
		if r.Status >= 400 {
			var e errorBody
			if err := json.Unmarshal(r.Body, &e); err != nil || e.Error.Code == "" {
				t.Fatalf("%s: not the JSON error model (%v)", r, err)
			}
			if r.Status >= 500 {
				t.Fatalf("%s: server error for garbage", r)
			}
		}
	}
}
