package check

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A flood of one kind of problem must not hide another kind: each kind
// keeps its own first examples, in the durability result and the report.
func TestEveryKindOfProblemKeepsItsOwnExamples(t *testing.T) {
	var ops h
	for i := range 60 {
		ops = ops.op(0, int64(2*i), int64(2*i+1), appendIn(fmt.Sprint("m", i)), appended(uint64(i+1), uint64(i+1)))
	}
	for i := range ops {
		ops[i].Input.Session = "a" // 60 acknowledged messages, all lost
	}
	finals := map[string]*sessionDoc{
		"a": {},
		"b": {IDs: []string{"x", "x"}, Seqs: []uint64{1, 2}}, // one duplicate, found after the losses
	}
	d := checkDurability(ops, finals, []string{"a", "b"}, nil)
	if d.Lost != 60 || d.Duplicates != 1 {
		t.Fatalf("got %+v", d)
	}
	if n := len(d.Examples["lost"]); n != maxExamples {
		t.Errorf("%d examples of lost messages, want %d", n, maxExamples)
	}
	if len(d.Examples["duplicates"]) != 1 {
		t.Errorf("the duplicate has no example: %v", d.Examples)
	}

	r := &Report{Durability: d}
	r.summarize(ops, nil, nil, -1, 0)
	if len(r.Examples["duplicates"]) != 1 || len(r.Examples["lost"]) != maxExamples || r.Pass {
		t.Fatalf("report: %+v", r)
	}
	var text strings.Builder
	r.WriteText(&text)
	for _, want := range []string{"PROBLEM: 60 lost", "PROBLEM: 1 duplicates", "message x stored twice", "… and 50 more"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

// Every count is at the top level of the JSON report, not only under the
// check that found it.
func TestReportHasEveryCountAtTheTopLevel(t *testing.T) {
	r := &Report{Durability: DurabilityResult{Lost: 1, Duplicates: 2, Misplaced: 3, Gaps: 4, Unread: 5, LostBeforeDelete: 7}}
	r.Durability.AddDivergent("session s: node2: version 4, want 5")
	r.Linearizability.Violations = []Violation{{Session: "s", Result: "illegal"}, {Session: "t", Result: "timeout"}}
	r.summarize(nil, nil, nil, -1, 8)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"lost": 1, "duplicates": 2, "misplaced": 3, "gaps": 4, "unread": 5, "divergent": 1,
		"lost_before_delete": 7, "stale_retries": 0, "illegal": 1, "timeouts": 1, "unexpected": 8}
	for k, v := range want {
		if got, ok := top[k].(float64); !ok || got != v {
			t.Errorf("top-level %s = %v, want %v", k, top[k], v)
		}
	}
	ex, _ := top["examples"].(map[string]any)
	for _, k := range []string{"divergent", "illegal", "timeouts"} {
		if ex[k] == nil {
			t.Errorf("no examples of %s: %v", k, ex)
		}
	}
	if len(r.Problems) != 10 { // every kind found but stale_retries
		t.Errorf("problems: %q", r.Problems)
	}
}

// The sessions the workload deletes: an acknowledged message must be in
// every read of its session that begins after the acknowledgement, until a
// delete may have taken effect; after the delete it is not lost.
func TestAppendsToDeletedSessionsAreReadUntilTheDelete(t *testing.T) {
	read := func(ids ...string) Output { return readOut(9, nil, ids...) }
	del := Input{Kind: KindDelete}
	base := func() h {
		return h{}.
			op(0, 0, 1, appendIn("a"), appended(5, 1)).
			op(0, 2, 3, appendIn("b"), appended(6, 2))
	}
	check := func(ops h, final *sessionDoc) DurabilityResult {
		t.Helper()
		return checkDurability(ops, map[string]*sessionDoc{"s": final}, nil, []string{"s"})
	}
	withIDs := func(ops h, ids ...string) h { ops[len(ops)-1].Messages = ids; return ops }

	// Read, delete, a read that finds nothing, a final read of nothing.
	ok := withIDs(base().op(1, 4, 5, readIn(), read("a", "b")), "a", "b").
		op(1, 6, 7, del, Output{Status: StatusOK}).
		op(2, 8, 9, readIn(), Output{Status: StatusNotFound}).
		op(-1, 20, 21, readIn(), Output{Status: StatusNotFound})
	if d := check(ok, nil); !d.OK() || d.DeletedAcked != 2 || d.Lost != 0 {
		t.Fatalf("a deleted session's messages reported lost after its delete: %+v", d)
	}
	// A read concurrent with a delete may miss them.
	racing := base().
		op(1, 4, 8, del, Output{Status: StatusOK}).
		op(2, 5, 6, readIn(), Output{Status: StatusNotFound})
	if d := check(racing, nil); !d.OK() {
		t.Fatalf("a read racing a delete: %+v", d)
	}
	// An unknown delete may take effect at any time after its call.
	unknown := base().
		op(1, 4, 5, del, Output{Status: StatusUnknown}).
		op(2, 30, 31, readIn(), Output{Status: StatusNotFound})
	if d := check(unknown, nil); !d.OK() {
		t.Fatalf("a read after an unknown delete: %+v", d)
	}

	// b missing from a read before any delete.
	lost := withIDs(base().op(1, 4, 5, readIn(), read("a")), "a")
	if d := check(lost, nil); d.LostBeforeDelete != 1 || d.OK() || len(d.Examples["lost_before_delete"]) != 1 {
		t.Fatalf("a missing message: %+v", d)
	}
	// Another message at b's seq.
	swapped := withIDs(base().op(1, 4, 5, readIn(), read("a", "z")), "a", "z")
	if d := check(swapped, nil); d.LostBeforeDelete != 1 {
		t.Fatalf("a message replaced at its seq: %+v", d)
	}
	// The session gone without a delete; the read made before the append
	// was acknowledged does not count.
	gone := base().
		op(1, 0, 1, readIn(), Output{Status: StatusNotFound}).
		op(1, 4, 5, readIn(), Output{Status: StatusNotFound})
	if d := check(gone, nil); d.LostBeforeDelete != 2 {
		t.Fatalf("a session gone without a delete: %+v", d)
	}
	// A read without recorded ids (an older history) shows its count.
	short := base().op(1, 4, 5, readIn(), read("a"))
	if d := check(short, nil); d.LostBeforeDelete != 1 {
		t.Fatalf("a read of one message after two were acknowledged: %+v", d)
	}
	// The final read, when no delete came after the appends.
	final := base().op(-1, 20, 21, readIn(), Output{Status: StatusNotFound})
	if d := check(final, nil); d.LostBeforeDelete != 2 {
		t.Fatalf("the final read: %+v", d)
	}
}

// A retried append's answer is the session's version at the retry, which
// cannot be older than the version its first attempt could have created:
// above every version seen before that attempt was sent.
func TestRetriedAppendMustNotAnswerAnOlderVersion(t *testing.T) {
	build := func(v uint64, reappend bool) h {
		ids, seq := []string{"r"}, uint64(2)
		if reappend {
			ids, seq = []string{"a"}, 1
		}
		ops := h{}.
			op(0, 0, 1, appendIn("a"), appended(5, 1)).
			op(1, 2, 3, putIn("f", "x", 0), written(9)).
			op(2, 4, 30, appendIn(ids...), appended(v, seq)).
			op(1, 10, 11, putIn("f", "y", 0), written(12))
		ops[2].Attempts = 3
		return ops
	}
	for _, tc := range []struct {
		v        uint64
		reappend bool
		ok       bool
	}{
		{8, false, false}, // older than v9, seen before the first attempt
		{9, false, false}, // the append created a version above v9
		{12, false, true}, // the version at the retry, after the put
		{9, true, true},   // a re-append of an existing id created nothing
		{8, true, false},
	} {
		ops := build(tc.v, tc.reappend)
		n, ex := checkRetriedVersions(ops)
		if (n == 0) != tc.ok || (n > 0) != (len(ex["stale_retries"]) == 1) {
			t.Errorf("v%d, re-append %v: %d stale retries %v, want ok=%v", tc.v, tc.reappend, n, ex, tc.ok)
		}
		if !tc.reappend {
			r := &Report{}
			r.summarize(ops, nil, nil, -1, 0)
			if (r.StaleRetries == 0) != tc.ok || r.Pass != tc.ok {
				t.Errorf("v%d: report %+v", tc.v, r)
			}
		}
	}
}

// The final reads record the attempts that got no answer, as failed, and
// the saved history keeps them.
func TestFinalReadsKeepFailedAttemptsInTheHistory(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"code":"no_leader"}}`)
			return
		}
		fmt.Fprint(w, `{"id":"s","version":7,"messages":[{"seq":1,"id":"a"},{"seq":2,"id":"b"}]}`)
	}))
	defer srv.Close()
	hist := NewHistory()
	finals := finalReads(hist, newHTTPClient(5*time.Second, Credentials{}), []Node{{Name: "n1", URL: srv.URL}}, []string{"s"}, 16, 5*time.Second)
	if finals["s"] == nil || finals["s"].Version != 7 {
		t.Fatalf("finals: %+v", finals)
	}
	var buf bytes.Buffer
	if err := WriteJSONLines(&buf, hist.Ops()); err != nil {
		t.Fatal(err)
	}
	saved, err := ReadJSONLines(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != 2 {
		t.Fatalf("saved %d operations, want the failed attempt and the read: %+v", len(saved), saved)
	}
	if saved[0].Output.Status != StatusFailed || !strings.Contains(saved[0].Detail, "no_leader") {
		t.Errorf("the failed attempt: %+v", saved[0])
	}
	if saved[1].Output.Status != StatusOK || strings.Join(saved[1].Messages, ",") != "a,b" {
		t.Errorf("the read: %+v", saved[1])
	}
}

// A workload operation that never got through is saved too, marked as
// failed, with the last failure.
func TestFailedWorkloadOperationsAreSavedMarkedFailed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"code":"no_leader"}}`)
	}))
	defer srv.Close()
	cfg := DefaultWorkload()
	cfg.RetryDeadline = 200 * time.Millisecond
	hist := NewHistory()
	w := NewWorkload(cfg, Credentials{}, hist, func() []Node { return []Node{{Name: "n1", URL: srv.URL}} })
	c := &client{w: w, rnd: rand.New(rand.NewPCG(1, 1)), seen: map[string]*view{}}
	c.run(putIn("f", "x", 0))
	c.run(readIn())
	var buf bytes.Buffer
	if err := WriteJSONLines(&buf, hist.Ops()); err != nil {
		t.Fatal(err)
	}
	saved, err := ReadJSONLines(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != 2 {
		t.Fatalf("saved %d operations, want 2", len(saved))
	}
	for _, op := range saved {
		if op.Output.Status != StatusFailed || !strings.Contains(op.Detail, "no_leader") {
			t.Errorf("%s saved as %+v", op.Input.Kind, op)
		}
	}
	if saved[0].Attempts < 2 {
		t.Errorf("the write was not retried: %+v", saved[0])
	}
}

// A session no final read reached is reported with the last failure, which
// the history keeps.
func TestUnreadSessionShowsTheLastFailedRead(t *testing.T) {
	ops := h{}.
		op(0, 0, 1, appendIn("a"), appended(5, 1)).
		op(16, 2, 3, readIn(), Output{Status: StatusFailed}).
		op(16, 4, 5, readIn(), Output{Status: StatusFailed})
	ops[1].Detail, ops[2].Detail = "503 no_leader from n1", "503 not_ready from n2"
	d := checkDurability(ops, map[string]*sessionDoc{}, []string{"s"}, nil)
	if d.Unread != 1 || len(d.Examples["unread"]) != 1 || !strings.Contains(d.Examples["unread"][0], "503 not_ready from n2") {
		t.Fatalf("got %+v", d)
	}
}
