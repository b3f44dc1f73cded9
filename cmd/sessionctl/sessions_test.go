package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sessiond/sessiond/client"
)

// fakeSessions serves GET /v1/sessions over a fixed sorted list of ids,
// paging as sessiond does, and records the queries it was sent.
func fakeSessions(t *testing.T, ids ...string) (*fakeNode, *[]string) {
	f := newFakeNode(t, "n1")
	var mu sync.Mutex
	var queries []string
	f.other = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/sessions" {
			apiErr(w, 404, "not_found", "no such route")
			return
		}
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		q := r.URL.Query()
		limit, err := strconv.Atoi(q.Get("limit"))
		if err != nil || limit < 1 || limit > 1000 {
			apiErr(w, 400, "invalid_limit", "limit must be a number from 1 to 1000")
			return
		}
		out := client.SessionPage{Sessions: []client.SessionInfo{}}
		for _, id := range ids {
			if id <= q.Get("after") || !strings.HasPrefix(id, q.Get("prefix")) {
				continue
			}
			if len(out.Sessions) == limit {
				out.Next = out.Sessions[limit-1].ID
				break
			}
			out.Sessions = append(out.Sessions, client.SessionInfo{ID: id, MessageCount: len(id), SizeBytes: 300 + int64(len(id)),
				UpdatedAt: 1_700_000_000_000, Version: 7})
		}
		_ = json.NewEncoder(w).Encode(out)
	}
	return f, &queries
}

func TestSessionsPrintsOnePageAndSaysWhereTheNextStarts(t *testing.T) {
	f, queries := fakeSessions(t, "a1", "a2", "b1", "b2", "b3")
	code, out, errOut := run(t, "", "--addr", f.host(), "sessions", "--limit", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"ID", "MESSAGES", "SIZE", "UPDATED", "a1", "a2", "302 B", "2023-11-14T22:13:20Z", "2 sessions", "sessions --after a2"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "b1") || len(*queries) != 1 {
		t.Errorf("printed more than one page (%d requests):\n%s", len(*queries), out)
	}
}

func TestSessionsAllFollowsNextToTheEnd(t *testing.T) {
	f, queries := fakeSessions(t, "a1", "a2", "b1", "b2", "b3", "c")
	code, out, errOut := run(t, "", "--addr", f.host(), "sessions", "--all", "--limit", "2", "--prefix", "b", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got client.SessionPage
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	var ids []string
	for _, s := range got.Sessions {
		ids = append(ids, s.ID)
	}
	if strings.Join(ids, ",") != "b1,b2,b3" || got.Next != "" {
		t.Fatalf("listed %v next %q, want b1,b2,b3 and no next", ids, got.Next)
	}
	if want := "limit=2&prefix=b|after=b2&limit=2&prefix=b"; strings.Join(*queries, "|") != want {
		t.Fatalf("queries %v, want %s", *queries, want)
	}

	code, out, _ = run(t, "", "--addr", f.host(), "sessions", "--all", "--limit", "1000")
	if code != 0 || !strings.Contains(out, "6 sessions") || strings.Contains(out, "more after") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestSessionsRefusesABadLimitAndReportsServerErrors(t *testing.T) {
	f, queries := fakeSessions(t, "a")
	for _, limit := range []string{"0", "1001", "-3"} {
		if code, _, errOut := run(t, "", "--addr", f.host(), "sessions", "--limit", limit); code != 2 || !strings.Contains(errOut, "--limit") {
			t.Errorf("--limit %s: exit %d %s", limit, code, errOut)
		}
	}
	if len(*queries) != 0 {
		t.Fatalf("a usage error reached the server: %v", *queries)
	}
	bad := newFakeNode(t, "n2")
	bad.other = func(w http.ResponseWriter, r *http.Request) {
		apiErr(w, 400, "invalid_prefix", "prefix must be the start of a session id")
	}
	if code, _, errOut := run(t, "", "--addr", bad.host(), "sessions", "--prefix", "x y"); code != 1 || !strings.Contains(errOut, "invalid_prefix") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
