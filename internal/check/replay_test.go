package check

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestDiagnoseHistory explains a failing session's history saved by
// sessioncheck: SESSIONCHECK_HISTORY=path/to/session.jsonl go test -run Diagnose -v
func TestDiagnoseHistory(t *testing.T) {
	path := os.Getenv("SESSIONCHECK_HISTORY")
	if path == "" {
		t.Skip("set SESSIONCHECK_HISTORY to a session history written by sessioncheck")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops, err := ReadJSONLines(f)
	if err != nil {
		t.Fatal(err)
	}
	pops, _, _ := prepare(ops, nil, false)
	model := Model.ToModel()
	res, info := porcupine.CheckOperationsVerbose(model, pops, time.Minute)
	t.Logf("result: %v (%d ops)", res, len(pops))
	partials := info.PartialLinearizationsOperations()
	if len(partials) == 0 || len(partials[0]) == 0 {
		return
	}
	longest := partials[0][0]
	for _, p := range partials[0] {
		if len(p) > len(longest) {
			longest = p
		}
	}
	states := model.Init()
	done := map[int64]bool{}
	var lastCall int64
	for i, op := range longest {
		_, states = model.Step(states, op.Input, op.Output)
		done[op.Call] = true
		lastCall = max(lastCall, op.Call)
		if i >= len(longest)-15 {
			t.Logf("%4d c%-3d [%.3f, %.3f] %s  => %s", i, op.ClientId, float64(op.Call)/1e9, float64(op.Return)/1e9,
				model.DescribeOperation(op.Input, op.Output), model.DescribeState(states))
		}
	}
	var next []porcupine.Operation
	for _, op := range pops {
		if !done[op.Call] {
			next = append(next, op)
		}
	}
	sort.Slice(next, func(i, j int) bool { return next[i].Call < next[j].Call })
	for _, op := range next[:min(len(next), 12)] {
		t.Logf("not linearized: c%-3d [%.3f, %.3f] %s", op.ClientId, float64(op.Call)/1e9, float64(op.Return)/1e9, model.DescribeOperation(op.Input, op.Output))
	}
	_ = filepath.Base(path)
}

// Histories recorded by sessioncheck runs, kept because each taught
// something. The checker must keep judging them the same way.
func TestRecordedHistories(t *testing.T) {
	for _, tc := range []struct {
		file string
		ok   bool
		why  string
	}{
		// A retried append's answer carries the session's version at the
		// retry; the model once took it for the append's own version.
		{"retried-append.jsonl", true, "retried appends are linearizable"},
		// The first attempt of a retried append reached a partitioned node,
		// was retransmitted by TCP after the partition healed, and appended
		// the message again after the session had been deleted (fixed in
		// fsm: deleted sessions' message ids stay reserved).
		{"late-append-after-delete.jsonl", false, "a message reappearing after a delete is a violation"},
	} {
		f, err := os.Open(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		ops, err := ReadJSONLines(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		res := CheckLinearizable(ops, nil, map[string]bool{ops[0].Input.Session: true}, time.Minute, "", nil)
		if got := len(res.Violations) == 0; got != tc.ok {
			t.Errorf("%s: linearizable=%v, want %v (%s)", tc.file, got, tc.ok, tc.why)
		}
	}
}
