package check

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExplainPointsAtTheViolation(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "late-append-after-delete.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops, err := ReadJSONLines(f)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	ok, err := Explain(&out, ops, time.Minute)
	if err != nil || ok {
		t.Fatalf("Explain = %v, %v; want a violation", ok, err)
	}
	// The final read shows a third message that no append since the
	// delete put there: it is the operation that cannot be placed.
	if !strings.Contains(out.String(), "NOT linearizable") || !strings.Contains(out.String(), "read() -> 3 msgs") {
		t.Fatalf("explanation does not name the read that cannot be placed:\n%s", out.String())
	}
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
