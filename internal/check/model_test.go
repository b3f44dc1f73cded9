package check

import (
	"fmt"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// h builds histories by hand: each op is [call, return] in ms.
type h []Op

func (x h) op(client int, call, ret int64, in Input, out Output) h {
	in.Session = "s"
	return append(x, Op{Client: client, Input: in, Output: out, Call: call * 1e6, Return: ret * 1e6})
}

func appendIn(ids ...string) Input { return Input{Kind: KindAppend, IDs: ids} }
func readIn() Input                { return Input{Kind: KindRead} }
func putIn(field, value string, ifMatch uint64) Input {
	return Input{Kind: KindPutField, Field: field, Value: value, HasIfMatch: ifMatch > 0, IfMatch: ifMatch}
}

func appended(v uint64, seqs ...uint64) Output {
	return Output{Status: StatusOK, Version: v, Seqs: seqs}
}
func readOut(v uint64, fields map[string]string, ids ...string) Output {
	return Output{Status: StatusOK, Version: v, Count: len(ids), Hash: DigestIDs(ids), Fields: CanonicalFields(fields)}
}
func written(v uint64) Output { return Output{Status: StatusOK, Version: v} }

func check(t *testing.T, ops h, final *sessionDoc) porcupine.CheckResult {
	t.Helper()
	res := CheckLinearizable(ops, map[string]*sessionDoc{"s": final}, nil, 10*time.Second, "", nil)
	if len(res.Violations) == 0 {
		return porcupine.Ok
	}
	return porcupine.Illegal
}

func wantOK(t *testing.T, ops h) {
	t.Helper()
	if r := check(t, ops, nil); r != porcupine.Ok {
		t.Fatalf("linearizable history reported %v", r)
	}
}

func wantIllegal(t *testing.T, ops h) {
	t.Helper()
	if r := check(t, ops, nil); r != porcupine.Illegal {
		t.Fatalf("violating history reported %v", r)
	}
}

func TestConcurrentAppendsAndReadsAreLinearizable(t *testing.T) {
	wantOK(t, h{}.
		op(0, 0, 10, appendIn("a"), appended(5, 1)).
		op(1, 2, 12, appendIn("b"), appended(6, 2)).
		op(2, 1, 11, readIn(), readOut(5, nil, "a")). // sees a, not yet b
		op(2, 13, 14, readIn(), readOut(6, nil, "a", "b")).
		op(0, 15, 16, putIn("f", "x", 6), written(9)).
		op(1, 17, 18, readIn(), readOut(9, map[string]string{"f": "x"}, "a", "b")))
}

func TestAcknowledgedAppendMustNotBeLost(t *testing.T) {
	wantIllegal(t, h{}.
		op(0, 0, 10, appendIn("a"), appended(5, 1)).
		op(1, 20, 30, readIn(), readOut(7, nil))) // a later read without a
}

func TestReadMustNotBeStale(t *testing.T) {
	wantIllegal(t, h{}.
		op(0, 0, 10, appendIn("a"), appended(5, 1)).
		op(0, 11, 12, appendIn("b"), appended(6, 2)).
		op(1, 20, 30, readIn(), readOut(5, nil, "a"))) // b was acknowledged before the read began
}

func TestReappendReturnsTheOriginalSeq(t *testing.T) {
	ok := h{}.
		op(0, 0, 10, appendIn("a"), appended(5, 1)).
		op(1, 11, 12, appendIn("b"), appended(6, 2)).
		op(0, 13, 14, appendIn("a"), appended(6, 1))
	wantOK(t, ok)
	dup := h{}.
		op(0, 0, 10, appendIn("a"), appended(5, 1)).
		op(0, 13, 14, appendIn("a"), appended(6, 2)) // stored twice
	wantIllegal(t, dup)
}

func TestVersionsOnlyGrow(t *testing.T) {
	wantIllegal(t, h{}.
		op(0, 0, 10, appendIn("a"), appended(5, 1)).
		op(0, 11, 12, appendIn("b"), appended(4, 2)))
}

func TestCompareAndSetAdmitsOneWinner(t *testing.T) {
	base := h{}.op(0, 0, 1, appendIn("a"), appended(5, 1))
	wantIllegal(t, base.
		op(1, 2, 10, putIn("f", "x", 5), written(7)).
		op(2, 2, 10, putIn("f", "y", 5), written(8))) // both matched version 5
	wantOK(t, base.
		op(1, 2, 10, putIn("f", "x", 5), written(7)).
		op(2, 2, 10, putIn("f", "y", 5), Output{Status: StatusConflict}))
	wantIllegal(t, base.
		op(1, 2, 10, putIn("f", "x", 5), Output{Status: StatusConflict})) // it did match
}

func TestUnknownWriteMayHaveHappenedOrNot(t *testing.T) {
	for _, seen := range []bool{true, false} {
		ops := h{}.
			op(0, 0, 1, appendIn("a"), appended(5, 1)).
			op(1, 2, 3, putIn("f", "x", 0), Output{Status: StatusUnknown})
		fields, version := map[string]string{}, uint64(5)
		if seen {
			fields["f"], version = "x", 9
		}
		ops = ops.op(2, 20, 21, readIn(), readOut(version, fields, "a"))
		ops[1].Return = Open
		wantOK(t, ops)
	}
}

func TestUnknownConditionalWriteCannotApplyOnAMismatch(t *testing.T) {
	ops := h{}.
		op(0, 0, 1, appendIn("a"), appended(5, 1)).
		op(1, 2, 3, putIn("f", "x", 4), Output{Status: StatusUnknown}).
		op(2, 20, 21, readIn(), readOut(9, map[string]string{"f": "x"}, "a"))
	ops[1].Return = Open
	wantIllegal(t, ops)
}

func TestUnknownAppendsAreResolvedByTheFinalRead(t *testing.T) {
	ops := h{}.
		op(0, 0, 1, appendIn("a"), appended(5, 1)).
		op(1, 2, 3, appendIn("gone"), Output{Status: StatusUnknown}).
		op(2, 4, 5, appendIn("kept"), Output{Status: StatusUnknown}).
		op(3, 6, 7, readIn(), readOut(8, nil, "a", "kept"))
	final := &sessionDoc{Version: 8, IDs: []string{"a", "kept"}, Seqs: []uint64{1, 2}}
	pops, open, dropped := prepare(ops, final, true)
	if len(pops) != 3 || open != 0 || dropped != 1 {
		t.Fatalf("prepare: %d ops, %d open, %d dropped; want 3, 0, 1", len(pops), open, dropped)
	}
	kept := pops[1]
	if !kept.Output.(Output).Applied || kept.Return != 7e6 {
		t.Fatalf("the unknown append the read shows should be applied and end by the read's return: %+v", kept)
	}
	if r := check(t, ops, final); r != porcupine.Ok {
		t.Fatalf("resolved history reported %v", r)
	}
}

func TestDeletedSessionStartsOver(t *testing.T) {
	del := Input{Kind: KindDelete}
	wantOK(t, h{}.
		op(0, 0, 1, appendIn("a"), appended(5, 1)).
		op(0, 2, 3, del, Output{Status: StatusOK}).
		op(1, 4, 5, readIn(), Output{Status: StatusNotFound}).
		op(0, 6, 7, appendIn("b"), appended(9, 1)))
	wantIllegal(t, h{}.
		op(0, 0, 1, appendIn("a"), appended(5, 1)).
		op(0, 2, 3, del, Output{Status: StatusOK}).
		op(1, 4, 5, readIn(), readOut(5, nil, "a")))
}

func TestPageMustMatchTheLog(t *testing.T) {
	page := func(after, limit int, total int, ids ...string) (Input, Output) {
		return Input{Kind: KindPage, After: after, Limit: limit},
			Output{Status: StatusOK, Version: 6, Count: total, PageLen: len(ids), PageHash: DigestIDs(ids)}
	}
	base := h{}.
		op(0, 0, 1, appendIn("a"), appended(5, 1)).
		op(0, 2, 3, appendIn("b"), appended(6, 2))
	in, out := page(1, 5, 2, "b")
	wantOK(t, base.op(1, 4, 5, in, out))
	in, out = page(0, 1, 2, "b")
	wantIllegal(t, base.op(1, 4, 5, in, out))
}

func TestDurabilityCountsLostDuplicatedAndMisplacedMessages(t *testing.T) {
	ops := h{}.
		op(0, 0, 1, appendIn("a"), appended(5, 1)).
		op(0, 2, 3, appendIn("b"), appended(6, 2)).
		op(0, 4, 5, appendIn("c"), appended(7, 3))
	final := &sessionDoc{IDs: []string{"a", "c", "a"}, Seqs: []uint64{1, 2, 4}}
	d := checkDurability(ops, map[string]*sessionDoc{"s": final}, []string{"s"}, nil)
	if d.Acked != 3 || d.Lost != 1 || d.Duplicates != 1 || d.Misplaced != 1 || d.Gaps != 1 || d.OK() {
		t.Fatalf("got %+v", d)
	}
	d = checkDurability(ops, map[string]*sessionDoc{"s": {IDs: []string{"a", "b", "c"}, Seqs: []uint64{1, 2, 3}}}, []string{"s"}, nil)
	if !d.OK() || d.Acked != 3 {
		t.Fatalf("clean final state: %+v", d)
	}
}

// A retried append whose first attempt took effect is answered by the
// idempotent path with the session's version at the retry, which a later
// write may already have raised.
func TestRetriedAppendAnswersWithTheCurrentVersion(t *testing.T) {
	ops := h{}.
		op(0, 0, 1, appendIn("a"), appended(5, 1)).
		op(1, 2, 30, appendIn("r"), appended(8, 2)). // applied at v7, answered on retry
		op(2, 10, 11, appendIn("b"), appended(8, 3))
	ops[1].Attempts = 2
	wantOK(t, ops)
	ops[1].Attempts = 1 // sent once, the same answer would be a violation
	wantIllegal(t, ops)
}

// A retried append that created a message answers a version above the
// one before it: the version it created is above that, and the answer
// is not older than the version it created.
func TestModelRejectsARetriedAppendOlderThanItsSession(t *testing.T) {
	ops := h{}.
		op(0, 0, 1, appendIn("a"), appended(5, 1)).
		op(1, 2, 3, putIn("f", "x", 0), written(9)).
		op(2, 4, 30, appendIn("r"), appended(8, 2))
	ops[2].Attempts = 2
	wantIllegal(t, ops)
	ops[2].Output = appended(10, 2)
	wantOK(t, ops)
}

// A retried append refused as an id conflict took effect on an earlier
// attempt, before a delete reserved its id: applied, ended by its answer.
func TestRetryRefusedAfterADeleteCountsAsApplied(t *testing.T) {
	ops := h{}.
		op(0, 0, 20, appendIn("a"), Output{Status: StatusUnknown, Applied: true}).
		op(1, 5, 6, readIn(), readOut(5, nil, "a")).
		op(1, 7, 8, Input{Kind: KindDelete}, Output{Status: StatusOK}).
		op(1, 21, 22, readIn(), Output{Status: StatusNotFound})
	if r := check(t, ops, nil); r != porcupine.Ok {
		t.Fatalf("got %v", r)
	}
	ops[3].Output = readOut(9, nil, "a") // the message back after the delete
	if r := check(t, ops, nil); r != porcupine.Illegal {
		t.Fatalf("a message back after its delete: got %v", r)
	}
}

func TestWritesRecoveredIgnoresAStrayFailure(t *testing.T) {
	var ops h
	for i := int64(0); i < 1000; i++ { // 10 ms apart, from 0 to 10 s
		out := appended(uint64(i+1), uint64(i+1))
		if i < 150 || i == 800 { // an outage for 1.5 s, later one stray failure
			out = Output{Status: StatusFailed}
		}
		ops = ops.op(0, i*10, i*10+1, appendIn(fmt.Sprint(i)), out)
	}
	if got := writesRecovered(ops, 0, int64(20*time.Second), -1); got != 1500*time.Millisecond {
		t.Fatalf("recovered after %v, want 1.5s", got)
	}
}
