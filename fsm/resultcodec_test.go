package fsm

import (
	"reflect"
	"testing"
)

// TestResultsSurviveTheTripToAnotherNode encodes the results of real
// commands and decodes them as the proposing node would: everything the
// HTTP layer renders must arrive unchanged.
func TestResultsSurviveTheTripToAnotherNode(t *testing.T) {
	f := New(DefaultLimits)
	appendRes := applyLog(t, f, 1, appendCmd("s1", msg("m1", "user", "hi", `{"k":1}`), msg("m2", "assistant", "hello")))
	mergeRes := applyLog(t, f, 2, mergeCmd("s1", "bookingInfo", `{"ref":"ABC"}`))
	conflict := applyLog(t, f, 3, ifVersion(mergeCmd("s1", "x", "1"), 1))
	missing := applyLog(t, f, 4, deleteFieldCmd("s1", "nope"))

	for _, tc := range []struct {
		name string
		op   Op
		res  *Result
	}{
		{"append", OpAppendMessages, appendRes},
		{"merge", OpMergeFields, mergeRes},
		{"version mismatch", OpMergeFields, conflict},
		{"field not found", OpDeleteField, missing},
	} {
		got, err := DecodeResult(EncodeResult(tc.op, tc.res))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got.Status != tc.res.Status || got.Version != tc.res.Version || got.Created != tc.res.Created ||
			got.Changed != tc.res.Changed || got.Detail != tc.res.Detail || got.Expired != tc.res.Expired ||
			!reflect.DeepEqual(got.Messages, withoutVersions(tc.res.Messages)) {
			t.Fatalf("%s: decoded %+v, want %+v", tc.name, got, tc.res)
		}
		if (got.Session == nil) != (tc.res.Session == nil) {
			t.Fatalf("%s: session presence %v, want %v", tc.name, got.Session != nil, tc.res.Session != nil)
		}
		if tc.op != OpAppendMessages && tc.res.Session != nil {
			if !reflect.DeepEqual(got.Session.Fields(), tc.res.Session.Fields()) ||
				!reflect.DeepEqual(got.Session.Messages(), withoutVersions(tc.res.Session.Messages())) ||
				got.Session.Version != tc.res.Session.Version || got.Session.ID != tc.res.Session.ID {
				t.Fatalf("%s: session %+v, want %+v", tc.name, got.Session, tc.res.Session)
			}
		}
	}
	if len(appendRes.Messages) != 2 || appendRes.Messages[1].Seq != 2 {
		t.Fatalf("append result %+v", appendRes)
	}
	if _, err := DecodeResult(EncodeResult(OpAppendMessages, appendRes)[:5]); err == nil {
		t.Fatal("a truncated result decoded")
	}
}
