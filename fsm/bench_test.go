package fsm

import (
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

var content256 = strings.Repeat("x", 256)

func benchMsg(id string) NewMessage { return NewMessage{ID: id, Role: "user", Content: content256} }

// prefilled returns an FSM whose session "s" holds n messages, written at
// index 1.
func prefilled(b *testing.B, n int) *FSM {
	b.Helper()
	f := New(DefaultLimits)
	msgs := make([]NewMessage, n)
	for i := range msgs {
		msgs[i] = benchMsg("p" + strconv.Itoa(i))
	}
	if r := f.ApplyCommand(1, &Command{Op: OpAppendMessages, Session: "s", At: 1, Messages: msgs}); r.Status != StatusOK {
		b.Fatal(r.Detail)
	}
	return f
}

// One AppendMessages of one 256-byte message to a session of 1000 messages,
// through Apply on an encoded raft.Log, so decoding is included. Every
// 1000 iterations the session is reset to 1000 messages (outside the timer)
// so it never grows past 2000.
func BenchmarkApplyAppendTo1000MessageSession(b *testing.B) {
	const prefill, cycle = 1000, 1000
	logs := make([]*raft.Log, cycle)
	for i := range logs {
		c := Command{Op: OpAppendMessages, Session: "s", At: int64(i), Messages: []NewMessage{benchMsg("n" + strconv.Itoa(i))}}
		logs[i] = &raft.Log{Type: raft.LogCommand, Index: uint64(i + 2), Data: c.Encode()}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(logs[0].Data)))
	var f *FSM
	i := 0
	for b.Loop() {
		if i%cycle == 0 {
			b.StopTimer()
			f = prefilled(b, prefill)
			b.StartTimer()
		}
		if r := f.Apply(logs[i%cycle]).(*Result); r.Status != StatusOK || !r.Changed {
			b.Fatalf("append: %v %s", r.Status, r.Detail)
		}
		i++
	}
}

// ApplyBatch of 256 single-message appends spread over 64 sessions, as raft
// hands the FSM a full MaxAppendEntries batch. Reports ns per message.
func BenchmarkApplyBatch256(b *testing.B) {
	const batch, sessionCount, cycle = 256, 64, 200 // 200 batches: 800 messages per session
	batches := make([][]*raft.Log, cycle)
	index := uint64(0)
	for j := range batches {
		batches[j] = make([]*raft.Log, batch)
		for k := range batches[j] {
			index++
			c := Command{Op: OpAppendMessages, Session: "session-" + strconv.Itoa(k%sessionCount), At: int64(index),
				Messages: []NewMessage{benchMsg("m" + strconv.FormatUint(index, 10))}}
			batches[j][k] = &raft.Log{Type: raft.LogCommand, Index: index, Data: c.Encode()}
		}
	}
	b.ReportAllocs()
	var f *FSM
	i := 0
	for b.Loop() {
		if i%cycle == 0 {
			b.StopTimer()
			f = New(DefaultLimits)
			b.StartTimer()
		}
		out := f.ApplyBatch(batches[i%cycle])
		if r := out[batch-1].(*Result); r.Status != StatusOK {
			b.Fatalf("append: %v %s", r.Status, r.Detail)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/msg")
}

func BenchmarkEncodeCommand(b *testing.B) {
	c := Command{Op: OpAppendMessages, Session: "chat:4f1c2a9e-77aa", At: 1_700_000_000_000, HasIfVersion: true, IfVersion: 123456,
		Messages: []NewMessage{{ID: "01J9ZQ3X8Y7W6V5T4S3R2Q1P0N", Role: "assistant", Content: content256, Meta: []byte(`{"model":"m","tokens":57}`)}}}
	b.ReportAllocs()
	b.SetBytes(int64(len(c.Encode())))
	for b.Loop() {
		_ = c.Encode()
	}
}

// Snapshot plus Persist of 10 000 sessions, each with 10 messages and 2
// fields, into a sink that only counts bytes.
func BenchmarkSnapshotPersist10kSessions(b *testing.B) {
	f := New(DefaultLimits)
	for i := 0; i < 10_000; i++ {
		id := "session-" + strconv.Itoa(i)
		msgs := make([]NewMessage, 10)
		for j := range msgs {
			msgs[j] = NewMessage{ID: "m" + strconv.Itoa(j), Role: "user", Content: content256[:64]}
		}
		f.ApplyCommand(uint64(2*i+1), &Command{Op: OpAppendMessages, Session: id, At: 1, Messages: msgs})
		f.ApplyCommand(uint64(2*i+2), &Command{Op: OpMergeFields, Session: id, At: 2,
			Fields: fields("pendingMatch", `{"id":12345,"score":0.87}`, "lastSearchCriteria", `{"q":"flights","to":"LIS"}`)})
	}
	var size int64
	b.ReportAllocs()
	for b.Loop() {
		snap, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		sink := &countSink{}
		if err := snap.Persist(sink); err != nil {
			b.Fatal(err)
		}
		snap.Release()
		size = sink.n
	}
	b.SetBytes(size)
}

// countSink is a raft.SnapshotSink that discards what it is given.
type countSink struct{ n int64 }

func (s *countSink) Write(p []byte) (int, error) { s.n += int64(len(p)); return len(p), nil }
func (s *countSink) Close() error                { return nil }
func (s *countSink) Cancel() error               { return nil }
func (s *countSink) ID() string                  { return "count" }
