package httpapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/fsm"
)

// sessionList is GET /v1/sessions's body.
type sessionList struct {
	Sessions []fsm.SessionInfo `json:"sessions"`
	Next     *string           `json:"next"`
}

// listPage GETs one page of /v1/sessions and requires 200.
func (n *node) listPage(prefix, after string, limit int) sessionList {
	n.tb.Helper()
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	r := n.get("/v1/sessions?" + q.Encode())
	wantStatus(n.tb, r, http.StatusOK)
	var l sessionList
	decode(n.tb, r, &l)
	if l.Sessions == nil {
		n.tb.Fatalf("%s: sessions is not an array", r)
	}
	if l.Next != nil && *l.Next == "" {
		n.tb.Fatalf("%s: next is present but empty", r)
	}
	if len(l.Sessions) > 0 && l.Next != nil && *l.Next != l.Sessions[len(l.Sessions)-1].ID {
		n.tb.Fatalf("%s: next is not the last id of the page", r)
	}
	return l
}

// listAll follows next to the end and returns every id listed.
func (n *node) listAll(prefix string, limit int) []string {
	n.tb.Helper()
	var ids []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			n.tb.Fatal("the listing never ends")
		}
		l := n.listPage(prefix, after, limit)
		if len(l.Sessions) > limit {
			n.tb.Fatalf("a page of %d sessions, limit %d", len(l.Sessions), limit)
		}
		for _, s := range l.Sessions {
			ids = append(ids, s.ID)
		}
		if l.Next == nil {
			return ids
		}
		after = *l.Next
	}
}

// putSession creates (or updates) a session with one field, retrying while the
// node sheds load.
// Safe from any goroutine: a failure is reported with Errorf.
func (n *node) putSession(id string) {
	n.tb.Helper()
	for {
		r, err := n.tryDo(http.MethodPut, sessionPath(id), map[string]any{"k": 1})
		switch {
		case err != nil:
			n.tb.Errorf("PUT %s: %v", id, err)
		case r.Status == http.StatusServiceUnavailable:
			time.Sleep(10 * time.Millisecond)
			continue
		case r.Status != http.StatusOK && r.Status != http.StatusCreated:
			n.tb.Errorf("%s: status %d", r, r.Status)
		}
		return
	}
}

func TestListSessionsDescribesEachSession(t *testing.T) {
	n := startNode(t)
	if l := n.listPage("", "", 0); len(l.Sessions) != 0 || l.Next != nil {
		t.Fatalf("an empty node lists %+v", l)
	}
	n.appendMsg("chat-b", "m1", "hello")
	app := n.appendMsg("chat-b", "m2", "hello again")
	n.putSession("chat-a")
	n.putSession("other")

	l := n.listPage("chat-", "", 10)
	if len(l.Sessions) != 2 || l.Next != nil {
		t.Fatalf("prefix chat- lists %+v", l)
	}
	_, doc := n.session("chat-b")
	b := l.Sessions[1]
	if b.ID != "chat-b" || l.Sessions[0].ID != "chat-a" || b.MessageCount != 2 || b.Version != app.Version ||
		b.CreatedAt != doc.CreatedAt || b.UpdatedAt != doc.UpdatedAt || b.SizeBytes <= 0 {
		t.Fatalf("chat-b listed as %+v; the session is %+v (version %d)", b, doc, app.Version)
	}
	l = n.listPage("", "", 1)
	if len(l.Sessions) != 1 || l.Sessions[0].ID != "chat-a" || l.Next == nil {
		t.Fatalf("limit 1 lists %+v", l)
	}
	l = n.listPage("", "chat-b", 5)
	if len(l.Sessions) != 1 || l.Sessions[0].ID != "other" || l.Next != nil {
		t.Fatalf("after chat-b lists %+v", l)
	}
	// The body names its fields as documented.
	r := n.get("/v1/sessions?prefix=other")
	for _, k := range []string{`"id":"other"`, `"createdAt":`, `"updatedAt":`, `"messageCount":0`, `"sizeBytes":`, `"version":`} {
		if !strings.Contains(string(r.Body), k) {
			t.Errorf("%s lacks %s", r, k)
		}
	}
	if strings.Contains(string(r.Body), `"next"`) {
		t.Errorf("%s: a complete listing has a next", r)
	}
}

// A client pages through 2 000 sessions, 137 at a time, while other
// clients create and delete sessions whose ids fall between them. Every
// session that exists for the whole pass is listed exactly once, and the
// listing is in id order throughout.
func TestListSessionsPagesConsistentlyUnderConcurrentWrites(t *testing.T) {
	n := startNode(t)
	const stable = 2000
	ids := make([]string, stable)
	for i := range ids {
		ids[i] = fmt.Sprintf("s-%05d", i)
	}
	var wg sync.WaitGroup
	work := make(chan string)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				n.putSession(id)
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()

	// Churn: sessions "s-NNNNN-cK" sort right after "s-NNNNN"; they are
	// created and deleted while the listing runs, on every shard.
	stop := make(chan struct{})
	var churned atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("s-%05d-c%d", (i*7919+w*1009)%stable, w)
				r, err := n.tryDo(http.MethodPut, sessionPath(id), map[string]any{"k": i})
				if err != nil || (r.Status != http.StatusOK && r.Status != http.StatusCreated && r.Status != http.StatusServiceUnavailable) {
					t.Errorf("churn create %s: %v %v", id, r, err)
					return
				}
				if i%2 == 1 {
					if r, err = n.tryDo(http.MethodDelete, sessionPath(id), nil); err != nil || r.Status >= 500 && r.Status != 503 {
						t.Errorf("churn delete %s: %v %v", id, r, err)
						return
					}
				}
				churned.Add(1)
			}
		}(w)
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()

	for pass := 0; pass < 3; pass++ {
		before := churned.Load()
		all := n.listAll("", 137)
		for i := 1; i < len(all); i++ {
			if all[i-1] >= all[i] {
				t.Fatalf("pass %d: %q listed before %q: out of order or twice", pass, all[i-1], all[i])
			}
		}
		var got []string
		for _, id := range all {
			if !strings.Contains(id, "-c") {
				got = append(got, id)
			}
		}
		if !slices.Equal(got, ids) {
			missing, extra := diff(ids, got)
			t.Fatalf("pass %d listed %d stable sessions, want %d; missing %v, unexpected %v", pass, len(got), stable, head(missing), head(extra))
		}
		if churned.Load() == before {
			t.Fatalf("pass %d: no session was created or deleted while it ran", pass)
		}
	}
	// With a prefix the same holds for the sessions under it.
	want := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !strings.HasPrefix(id, "s-01") })
	got := slices.DeleteFunc(n.listAll("s-01", 7), func(id string) bool { return strings.Contains(id, "-c") })
	if !slices.Equal(got, want) {
		t.Fatalf("prefix s-01 lists %d stable sessions, want %d", len(got), len(want))
	}
}

func diff(want, got []string) (missing, extra []string) {
	g := map[string]bool{}
	for _, id := range got {
		g[id] = true
	}
	w := map[string]bool{}
	for _, id := range want {
		w[id] = true
		if !g[id] {
			missing = append(missing, id)
		}
	}
	for _, id := range got {
		if !w[id] {
			extra = append(extra, id)
		}
	}
	return missing, extra
}

func head(s []string) []string { return s[:min(len(s), 10)] }

func TestListSessionsRefusesBadParameters(t *testing.T) {
	n := startNode(t)
	long := strings.Repeat("a", fsm.DefaultLimits.MaxSessionIDBytes+1)
	for _, tc := range []struct{ query, code string }{
		{"limit=0", "invalid_limit"},
		{"limit=1001", "invalid_limit"},
		{"limit=-1", "invalid_limit"},
		{"limit=ten", "invalid_limit"},
		{"limit=", ""},
		{"limit=1000", ""},
		{"after=a%20b", "invalid_after"},
		{"after=a/b", "invalid_after"},
		{"after=" + long, "invalid_after"},
		{"after=s-1", ""},
		{"prefix=a%2Fb", "invalid_prefix"},
		{"prefix=%C3%A9", "invalid_prefix"},
		{"prefix=" + long, "invalid_prefix"},
		{"prefix=s-1&after=s-0", ""},
	} {
		r := n.get("/v1/sessions?" + tc.query)
		if tc.code == "" {
			wantStatus(t, r, http.StatusOK)
			continue
		}
		wantError(t, r, http.StatusBadRequest, tc.code)
	}
	// The node-to-node route checks the same, and the shard.
	wantError(t, n.get("/internal/v1/shards/0/sessions?limit=0"), http.StatusBadRequest, "invalid_limit")
	wantError(t, n.get(fmt.Sprintf("/internal/v1/shards/%d/sessions", testShardCount)), http.StatusBadRequest, "invalid_shard")
	wantError(t, n.get("/internal/v1/shards/x/sessions"), http.StatusBadRequest, "invalid_shard")
	wantError(t, n.do(http.MethodPost, "/v1/sessions", nil), http.StatusMethodNotAllowed, "method_not_allowed")
}

// The node-to-node route answers one shard's part of a listing.
func TestInternalShardSessionsListsOneShard(t *testing.T) {
	n := startNode(t)
	perShard := map[uint32][]string{}
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("x%02d", i)
		n.putSession(id)
		sh := n.node.ShardFor(id)
		perShard[sh] = append(perShard[sh], id)
	}
	for sh := uint32(0); sh < testShardCount; sh++ {
		r := n.get(fmt.Sprintf("/internal/v1/shards/%d/sessions?limit=2", sh))
		wantStatus(t, r, http.StatusOK)
		var page struct {
			Sessions []fsm.SessionInfo `json:"sessions"`
			More     bool              `json:"more"`
		}
		decode(t, r, &page)
		want := perShard[sh]
		if len(want) < 3 {
			t.Fatalf("shard %d holds only %v; choose other ids", sh, want)
		}
		if len(page.Sessions) != 2 || page.Sessions[0].ID != want[0] || page.Sessions[1].ID != want[1] || !page.More {
			t.Fatalf("shard %d: %s, want %v and more", sh, r, want[:2])
		}
	}
}
