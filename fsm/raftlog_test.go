package fsm

import (
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

func TestApplyDecodesLogsAndAdvancesTheAppliedIndex(t *testing.T) {
	f := New(testLimits)
	r := applyLog(t, f, 3, appendCmd("s", msg("m1", "u", "c")))
	if r.Status != StatusOK || r.Version != 3 || f.AppliedIndex() != 3 {
		t.Fatalf("apply: %+v, applied %d", r, f.AppliedIndex())
	}
	mark := markState(t, f)
	for i, data := range [][]byte{nil, {}, {0xff}, {formatVersion, byte(OpAppendMessages)}, append(enc(appendCmd("s", msg("m2", "u", "c"))), 0)} {
		out := f.Apply(&raft.Log{Type: raft.LogCommand, Index: uint64(4 + i), Data: data})
		if r, ok := out.(*Result); !ok || r.Status != StatusInvalid || r.Detail == "" {
			t.Fatalf("undecodable entry %x: %#v, want a StatusInvalid *Result", data, out)
		}
		if f.AppliedIndex() != uint64(4+i) {
			t.Fatalf("an undecodable entry did not advance the applied index")
		}
	}
	mark.assertUnchanged(t, f)
	for i, typ := range []raft.LogType{raft.LogNoop, raft.LogConfiguration, raft.LogBarrier} {
		index := uint64(20 + i)
		if out := f.Apply(&raft.Log{Type: typ, Index: index, Data: []byte("x")}); out != nil {
			t.Errorf("%v entry: Apply returned %#v, want nil", typ, out)
		}
		if f.AppliedIndex() != index {
			t.Errorf("%v entry did not advance the applied index", typ)
		}
	}
	mark.assertUnchanged(t, f)
}

func TestApplyBatchAnswersEveryLogInOrder(t *testing.T) {
	f := New(testLimits)
	logs := []*raft.Log{
		{Type: raft.LogCommand, Index: 1, Data: enc(appendCmd("s", msg("m1", "u", "c")))},
		{Type: raft.LogConfiguration, Index: 2},
		{Type: raft.LogCommand, Index: 3, Data: []byte{0}},
		{Type: raft.LogCommand, Index: 4, Data: enc(appendCmd("s", msg("m1", "u", "c")))},
		{Type: raft.LogCommand, Index: 5, Data: enc(putCmd("s", "f", "1"))},
		{Type: raft.LogCommand, Index: 6, Data: enc(deleteCmd("t"))},
	}
	out := f.ApplyBatch(logs)
	if len(out) != len(logs) {
		t.Fatalf("%d results for %d logs", len(out), len(logs))
	}
	want := []struct {
		status  Status
		version uint64
	}{{StatusOK, 1}, {}, {StatusInvalid, 0}, {StatusOK, 1}, {StatusOK, 5}, {StatusNotFound, 0}}
	for i, w := range want {
		if logs[i].Type != raft.LogCommand {
			if out[i] != nil {
				t.Errorf("result %d: %#v, want nil", i, out[i])
			}
			continue
		}
		r := out[i].(*Result)
		if r.Status != w.status || r.Version != w.version {
			t.Errorf("result %d: %v %d, want %v %d", i, r.Status, r.Version, w.status, w.version)
		}
	}
	if f.AppliedIndex() != 6 {
		t.Errorf("applied index %d, want 6", f.AppliedIndex())
	}
	if out := f.ApplyBatch(nil); len(out) != 0 || f.AppliedIndex() != 6 {
		t.Errorf("an empty batch returned %v and moved the applied index to %d", out, f.AppliedIndex())
	}
}

// ApplyBatch must leave the same state and answers as applying the same logs
// one by one.
func TestApplyBatchEqualsApplyingOneByOne(t *testing.T) {
	var logs []*raft.Log
	for i, c := range []Command{appendCmd("a", msg("1", "u", "x")), putCmd("a", "f", "1"), appendCmd("b", msg("1", "u", "x")),
		appendCmd("a", msg("1", "u", "x"), msg("2", "u", "y")), deleteCmd("b"), patchCmd("a", `{"f":null,"g":{"h":1}}`)} {
		c.At = int64(i)
		logs = append(logs, &raft.Log{Type: raft.LogCommand, Index: uint64(i + 1), Data: c.Encode()})
	}
	one, batch := New(testLimits), New(testLimits)
	var single []interface{}
	for _, l := range logs {
		single = append(single, one.Apply(l))
	}
	batched := batch.ApplyBatch(logs)
	for i := range single {
		a, b := single[i].(*Result), batched[i].(*Result)
		if a.Status != b.Status || a.Version != b.Version || !reflect.DeepEqual(a.Messages, b.Messages) {
			t.Errorf("result %d: one by one %+v, batched %+v", i, a, b)
		}
	}
	if string(snapshotBytes(t, one)) != string(snapshotBytes(t, batch)) {
		t.Errorf("batched and one-by-one states differ")
	}
}
