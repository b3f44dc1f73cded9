package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestAppendOneMessageAnswers201WithTheStoredMessage covers POST …/messages
// with a single message object, meta included, and the session it creates.
func TestAppendOneMessageAnswers201WithTheStoredMessage(t *testing.T) {
	n := startNode(t)
	id := "append-one"
	r := n.do(http.MethodPost, sessionPath(id, "/messages"),
		`{"id":"m1","role":"user","content":"héllo <b>&</b> \u2028","meta":{"lang":"fr","tokens":[1,2]}}`)
	wantStatus(t, r, http.StatusCreated)
	var a appendResp
	decode(t, r, &a)
	wantETag(t, r, a.Version)
	if len(a.Messages) != 1 {
		t.Fatalf("messages %+v", a.Messages)
	}
	m := a.Messages[0]
	if m.Seq != 1 || m.ID != "m1" || m.Role != "user" || m.Content != "héllo <b>&</b> \u2028" || m.CreatedAt == 0 {
		t.Fatalf("stored message %+v", m)
	}
	if !jsonEqual(t, string(m.Meta), `{"lang":"fr","tokens":[1,2]}`) {
		t.Fatalf("meta %s", m.Meta)
	}
	_, doc := n.session(id)
	if doc.Version != a.Version || len(doc.Messages) != 1 || doc.CreatedAt != m.CreatedAt {
		t.Fatalf("session %+v after append %+v", doc, a)
	}
	got, _ := json.Marshal(doc.Messages[0])
	want, _ := json.Marshal(m)
	if string(got) != string(want) {
		t.Fatalf("GET message %s, append answered %s", got, want)
	}

	// Content of exactly 64 KiB is allowed.
	big := strings.Repeat("x", 64<<10)
	a = n.appendMsg(id, "big", big)
	if a.Messages[0].Seq != 2 || len(a.Messages[0].Content) != 64<<10 {
		t.Fatalf("64 KiB append: seq %d, %d bytes", a.Messages[0].Seq, len(a.Messages[0].Content))
	}
}

// TestAppendWithoutIDGeneratesADistinctIDPerMessage covers server-generated
// ids: two identical messages without ids are two messages.
func TestAppendWithoutIDGeneratesADistinctIDPerMessage(t *testing.T) {
	n := startNode(t)
	id := "append-noid"
	a1 := n.appendMsg(id, "", "same")
	a2 := n.appendMsg(id, "", "same")
	r := n.do(http.MethodPost, sessionPath(id, "/messages"), `{"messages":[{"role":"user","content":"same"},{"role":"user","content":"same"}]}`)
	wantStatus(t, r, http.StatusCreated)
	var b appendResp
	decode(t, r, &b)
	hex := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := map[string]bool{}
	for _, m := range append(append(a1.Messages, a2.Messages...), b.Messages...) {
		if !hex.MatchString(m.ID) || seen[m.ID] {
			t.Fatalf("generated id %q (seen before: %v)", m.ID, seen[m.ID])
		}
		seen[m.ID] = true
	}
	_, doc := n.session(id)
	if len(doc.Messages) != 4 {
		t.Fatalf("%d messages, want 4", len(doc.Messages))
	}
}

// TestAppendBatchStoresEveryMessageInOrder covers {messages:[…]}.
func TestAppendBatchStoresEveryMessageInOrder(t *testing.T) {
	n := startNode(t)
	id := "append-batch"
	n.appendMsg(id, "first", "0")
	r := n.do(http.MethodPost, sessionPath(id, "/messages"), map[string]any{"messages": []any{
		msg("a", "user", "1"), msg("b", "assistant", "2"), msg("c", "tool", "3"),
	}})
	wantStatus(t, r, http.StatusCreated)
	var a appendResp
	decode(t, r, &a)
	wantETag(t, r, a.Version)
	for i, want := range []string{"a", "b", "c"} {
		if m := a.Messages[i]; m.ID != want || m.Seq != uint64(i+2) || m.Content != fmt.Sprint(i+1) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	// The whole batch is one write: one version for all of it.
	_, doc := n.session(id)
	if doc.Version != a.Version || len(doc.Messages) != 4 {
		t.Fatalf("session %+v", doc)
	}
	if a.Messages[0].CreatedAt != a.Messages[2].CreatedAt {
		t.Fatalf("one batch with two timestamps: %+v", a.Messages)
	}
}

// TestAppendWithSameIDTwiceStoresOneMessageAndAnswersTheSame covers the
// retry guarantee for single messages and batches.
func TestAppendWithSameIDTwiceStoresOneMessageAndAnswersTheSame(t *testing.T) {
	n := startNode(t)
	cases := []struct {
		name string
		body string
		want int
	}{
		{"single", `{"id":"m1","role":"user","content":"hi","meta":{"k":1}}`, 1},
		{"batch", `{"messages":[{"id":"b1","role":"user","content":"x"},{"id":"b2","role":"assistant","content":"y"}]}`, 2},
		{"batch with an id twice", `{"messages":[{"id":"d1","role":"user","content":"x"},{"id":"d1","role":"user","content":"x"}]}`, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := "replay-" + strings.ReplaceAll(c.name, " ", "-")
			first := n.do(http.MethodPost, sessionPath(id, "/messages"), c.body)
			wantStatus(t, first, http.StatusCreated)
			second := n.do(http.MethodPost, sessionPath(id, "/messages"), c.body)
			wantStatus(t, second, http.StatusOK)
			if string(first.Body) != string(second.Body) || first.ETag() != second.ETag() {
				t.Fatalf("replay answered differently:\n%s (ETag %s)\n%s (ETag %s)", first, first.ETag(), second, second.ETag())
			}
			_, doc := n.session(id)
			if len(doc.Messages) != c.want {
				t.Fatalf("%d messages stored, want %d", len(doc.Messages), c.want)
			}
		})
	}
}

// TestAppendBatchWithSomeMessagesStoredAppendsOnlyTheNewOnes covers a
// partly replayed batch: the stored ones are answered as stored, the new
// ones appended, and the answer is 201.
func TestAppendBatchWithSomeMessagesStoredAppendsOnlyTheNewOnes(t *testing.T) {
	n := startNode(t)
	id := "partial-replay"
	n.appendMsg(id, "a", "1")
	r := n.do(http.MethodPost, sessionPath(id, "/messages"), map[string]any{"messages": []any{msg("a", "user", "1"), msg("b", "user", "2")}})
	wantStatus(t, r, http.StatusCreated)
	var a appendResp
	decode(t, r, &a)
	if a.Messages[0].Seq != 1 || a.Messages[1].Seq != 2 {
		t.Fatalf("answer %+v", a.Messages)
	}
	_, doc := n.session(id)
	if len(doc.Messages) != 2 {
		t.Fatalf("%d messages", len(doc.Messages))
	}
}

// TestIdempotencyKeyDedupsASingleMessageAndABatch covers the header: it
// becomes the id of a single message and key#i of batch message i.
func TestIdempotencyKeyDedupsASingleMessageAndABatch(t *testing.T) {
	n := startNode(t)
	id := "idem"
	single := `{"role":"user","content":"hello"}`
	first := n.do(http.MethodPost, sessionPath(id, "/messages"), single, "Idempotency-Key", "k1")
	wantStatus(t, first, http.StatusCreated)
	var a appendResp
	decode(t, first, &a)
	if a.Messages[0].ID != "k1" {
		t.Fatalf("id %q, want k1", a.Messages[0].ID)
	}
	second := n.do(http.MethodPost, sessionPath(id, "/messages"), single, "Idempotency-Key", "k1")
	wantStatus(t, second, http.StatusOK)
	if string(first.Body) != string(second.Body) {
		t.Fatalf("replay answered differently:\n%s\n%s", first, second)
	}

	batch := `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`
	first = n.do(http.MethodPost, sessionPath(id, "/messages"), batch, "Idempotency-Key", "k2")
	wantStatus(t, first, http.StatusCreated)
	decode(t, first, &a)
	if a.Messages[0].ID != "k2#0" || a.Messages[1].ID != "k2#1" {
		t.Fatalf("batch ids %q %q, want k2#0 k2#1", a.Messages[0].ID, a.Messages[1].ID)
	}
	second = n.do(http.MethodPost, sessionPath(id, "/messages"), batch, "Idempotency-Key", "k2")
	wantStatus(t, second, http.StatusOK)
	if string(first.Body) != string(second.Body) {
		t.Fatalf("batch replay answered differently:\n%s\n%s", first, second)
	}

	// An explicit id wins over the key.
	r := n.do(http.MethodPost, sessionPath(id, "/messages"), `{"id":"own","role":"user","content":"c"}`, "Idempotency-Key", "k3")
	wantStatus(t, r, http.StatusCreated)
	decode(t, r, &a)
	if a.Messages[0].ID != "own" {
		t.Fatalf("id %q, want own", a.Messages[0].ID)
	}

	_, doc := n.session(id)
	var ids []string
	for _, m := range doc.Messages {
		ids = append(ids, m.ID)
	}
	if got := strings.Join(ids, ","); got != "k1,k2#0,k2#1,own" {
		t.Fatalf("stored ids %s", got)
	}
}

// TestAppendSameIDWithDifferentContentIs409AndChangesNothing covers id
// reuse: a differing role, content or meta is a conflict, and a batch with
// one conflicting message stores none of its messages.
func TestAppendSameIDWithDifferentContentIs409AndChangesNothing(t *testing.T) {
	n := startNode(t)
	id := "conflict"
	wantStatus(t, n.do(http.MethodPost, sessionPath(id, "/messages"), `{"id":"m1","role":"user","content":"original","meta":{"a":1}}`), http.StatusCreated)
	wantStatus(t, n.do(http.MethodPost, sessionPath(id, "/messages"), `{"role":"user","content":"keyed"}`, "Idempotency-Key", "key"), http.StatusCreated)
	before, doc := n.session(id)
	for _, c := range []struct {
		name string
		body string
		hdr  []string
	}{
		{"content", `{"id":"m1","role":"user","content":"changed","meta":{"a":1}}`, nil},
		{"role", `{"id":"m1","role":"assistant","content":"original","meta":{"a":1}}`, nil},
		{"meta", `{"id":"m1","role":"user","content":"original","meta":{"a":2}}`, nil},
		{"meta dropped", `{"id":"m1","role":"user","content":"original"}`, nil},
		{"batch with one conflict", `{"messages":[{"id":"new","role":"user","content":"n"},{"id":"m1","role":"user","content":"changed"}]}`, nil},
		{"batch repeating an id differently", `{"messages":[{"id":"x","role":"user","content":"1"},{"id":"x","role":"user","content":"2"}]}`, nil},
		{"idempotency key reused", `{"role":"user","content":"other"}`, []string{"Idempotency-Key", "key"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := n.do(http.MethodPost, sessionPath(id, "/messages"), c.body, c.hdr...)
			wantError(t, r, http.StatusConflict, "id_conflict")
			wantETag(t, r, doc.Version)
			n.wantSame(id, before)
		})
	}
}

// TestListMessagesPagesWithAfterAndLimit covers GET …/messages: default page
// 100, limit up to 1000, nextAfter/hasMore/total, and pages past the end.
func TestListMessagesPagesWithAfterAndLimit(t *testing.T) {
	n := startNode(t)
	id := "paging"
	const total = 1005
	batch := make([]any, 1000)
	for i := range batch {
		batch[i] = msg(fmt.Sprintf("m%d", i+1), "user", fmt.Sprint(i+1))
	}
	wantStatus(t, n.do(http.MethodPost, sessionPath(id, "/messages"), map[string]any{"messages": batch}), http.StatusCreated)
	for i := 1000; i < total; i++ {
		n.appendMsg(id, fmt.Sprintf("m%d", i+1), fmt.Sprint(i+1))
	}
	_, doc := n.session(id)

	page := func(query string, wantFirst, wantN int, wantNext uint64, wantMore bool) pageResp {
		t.Helper()
		r := n.get(sessionPath(id, "/messages"+query))
		wantStatus(t, r, http.StatusOK)
		wantETag(t, r, doc.Version)
		var p pageResp
		decode(t, r, &p)
		if p.Messages == nil || len(p.Messages) != wantN || p.Total != total || p.Version != doc.Version ||
			p.NextAfter != wantNext || p.HasMore != wantMore {
			t.Fatalf("%s: %d messages total %d version %d nextAfter %d hasMore %v; want %d, %d, %d, %d, %v",
				query, len(p.Messages), p.Total, p.Version, p.NextAfter, p.HasMore, wantN, total, doc.Version, wantNext, wantMore)
		}
		for i, m := range p.Messages {
			if m.Seq != uint64(wantFirst+i) || m.Content != fmt.Sprint(wantFirst+i) {
				t.Fatalf("%s: message %d is %+v", query, i, m)
			}
		}
		if wantN == 0 && strings.Contains(string(r.Body), "nextAfter") {
			t.Fatalf("%s: empty page names nextAfter: %s", query, r.Body)
		}
		return p
	}
	page("", 1, 100, 100, true)
	page("?after=100", 101, 100, 200, true)
	page("?limit=1000", 1, 1000, 1000, true)
	page("?after=1000&limit=1000", 1001, 5, 1005, false)
	page("?after=3&limit=7", 4, 7, 10, true)
	page("?after=1004", 1005, 1, 1005, false)
	page("?after=1005", 0, 0, 0, false)
	page("?after=99999999", 0, 0, 0, false)
	page("?limit=1", 1, 1, 1, true)

	// Walking the pages by nextAfter visits every message once.
	seen := 0
	after := uint64(0)
	for {
		r := n.get(sessionPath(id, fmt.Sprintf("/messages?after=%d&limit=333", after)))
		var p pageResp
		decode(t, r, &p)
		seen += len(p.Messages)
		if !p.HasMore {
			break
		}
		after = p.NextAfter
	}
	if seen != total {
		t.Fatalf("walked %d messages, want %d", seen, total)
	}

	// A session without messages has an empty page.
	wantStatus(t, n.do(http.MethodPut, sessionPath("no-messages"), `{"a":1}`), http.StatusCreated)
	r := n.get(sessionPath("no-messages", "/messages"))
	wantStatus(t, r, http.StatusOK)
	var p pageResp
	decode(t, r, &p)
	if p.Messages == nil || len(p.Messages) != 0 || p.Total != 0 || p.HasMore {
		t.Fatalf("empty session page %s", r.Body)
	}
	wantError(t, n.get(sessionPath("never-written", "/messages")), http.StatusNotFound, "session_not_found")
}

// TestAppendPastTheMessageLimitIs413AndChangesNothing fills a session to
// its 100 000 messages and appends one more.
func TestAppendPastTheMessageLimitIs413AndChangesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 000 messages")
	}
	n := startNode(t)
	id := "full"
	var b strings.Builder
	for k := 0; k < 100; k++ {
		b.Reset()
		b.WriteString(`{"messages":[`)
		for i := 0; i < 1000; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":"%d","role":"u","content":"c"}`, k*1000+i)
		}
		b.WriteString(`]}`)
		wantStatus(t, n.do(http.MethodPost, sessionPath(id, "/messages"), b.String()), http.StatusCreated)
	}
	before := n.get(sessionPath(id, "/messages?after=99990"))
	r := n.do(http.MethodPost, sessionPath(id, "/messages"), msg("one-more", "u", "c"))
	wantError(t, r, http.StatusRequestEntityTooLarge, "session_too_large")
	after := n.get(sessionPath(id, "/messages?after=99990"))
	if string(after.Body) != string(before.Body) || after.ETag() != before.ETag() {
		t.Fatalf("full session changed:\n%s\n%s", before, after)
	}
	// A replay of a stored message is still answered.
	wantStatus(t, n.do(http.MethodPost, sessionPath(id, "/messages"), `{"id":"5","role":"u","content":"c"}`), http.StatusOK)
}
