package shard

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"net/rpc"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fill sets every field of v (a pointer to a struct) to a distinct non-zero
// value, so a round trip that drops a field, or a field raft adds later
// that the wire format does not carry, shows up as a difference.
func fill(t testing.TB, v reflect.Value, seed *uint64) {
	t.Helper()
	*seed++
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(t, v.Elem(), seed)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(0, int64(*seed)*1e9+7)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			fill(t, v.Field(i), seed)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte{byte(*seed), 'x', byte(*seed >> 8)})
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fill(t, s.Index(i), seed)
		}
		v.Set(s)
	case reflect.Uint8:
		v.SetUint(*seed % 200)
	case reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(*seed * 1000003)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*seed) % 100)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.String:
		v.SetString("s" + string(rune('a'+*seed%26)))
	default:
		t.Fatalf("fill: no rule for %s; teach the wire format and this test about it", v.Type())
	}
}

// wireRoundTrip sends in through the node RPC codec, as a call does, into out.
func wireRoundTrip(t *testing.T, in, out any) {
	t.Helper()
	var buf closingBuffer
	c := newWireCodec(&buf)
	if err := c.WriteRequest(&rpc.Request{ServiceMethod: "Node.Test", Seq: 7}, in); err != nil {
		t.Fatalf("encode %T: %v", in, err)
	}
	var req rpc.Request
	if err := c.ReadRequestHeader(&req); err != nil || req.ServiceMethod != "Node.Test" || req.Seq != 7 {
		t.Fatalf("header %+v, %v", req, err)
	}
	if err := c.ReadRequestBody(out); err != nil {
		t.Fatalf("decode %T: %v", out, err)
	}
}

type closingBuffer struct{ bytes.Buffer }

func (*closingBuffer) Close() error { return nil }

// sameTimes compares times after a trip (the wire carries the
// instant, not the location or the monotonic reading).
func sameTimes(a, b time.Time) bool { return a.Equal(b) }

// TestWireCarriesEveryFieldOfRaftAppends: appends, heartbeats, forwarded
// commands, read indexes and their answers come out of the node RPC
// encoding equal to what went in, every field included.
func TestWireCarriesEveryFieldOfRaftAppends(t *testing.T) {
	var seed uint64
	var args AppendArgs
	fill(t, reflect.ValueOf(&args), &seed)
	var gotArgs AppendArgs
	wireRoundTrip(t, args, &gotArgs)
	for i := range args.Req.Entries {
		if !sameTimes(args.Req.Entries[i].AppendedAt, gotArgs.Req.Entries[i].AppendedAt) {
			t.Fatalf("entry %d AppendedAt %v came back %v", i, args.Req.Entries[i].AppendedAt, gotArgs.Req.Entries[i].AppendedAt)
		}
		gotArgs.Req.Entries[i].AppendedAt = args.Req.Entries[i].AppendedAt
	}
	if !reflect.DeepEqual(args, gotArgs) {
		t.Fatalf("append changed on the wire:\n sent %+v\n got  %+v", args, gotArgs)
	}

	var reply AppendReply
	fill(t, reflect.ValueOf(&reply), &seed)
	var gotReply AppendReply
	wireRoundTrip(t, reply, &gotReply)
	if !reflect.DeepEqual(reply, gotReply) {
		t.Fatalf("append answer changed on the wire:\n sent %+v\n got  %+v", reply, gotReply)
	}

	var beats HeartbeatArgs
	fill(t, reflect.ValueOf(&beats), &seed)
	var gotBeats HeartbeatArgs
	wireRoundTrip(t, beats, &gotBeats)
	for i := range beats.Beats {
		for j := range beats.Beats[i].Req.Entries {
			gotBeats.Beats[i].Req.Entries[j].AppendedAt = beats.Beats[i].Req.Entries[j].AppendedAt
		}
	}
	if !reflect.DeepEqual(beats, gotBeats) {
		t.Fatalf("heartbeats changed on the wire:\n sent %+v\n got  %+v", beats, gotBeats)
	}

	var answers HeartbeatReply
	fill(t, reflect.ValueOf(&answers), &seed)
	var gotAnswers HeartbeatReply
	wireRoundTrip(t, answers, &gotAnswers)
	if !reflect.DeepEqual(answers, gotAnswers) {
		t.Fatalf("heartbeat answers changed on the wire:\n sent %+v\n got  %+v", answers, gotAnswers)
	}

	for _, pair := range [][2]any{
		{&ApplyArgs{}, &ApplyArgs{}}, {&ApplyReply{}, &ApplyReply{}},
		{&ReadIndexArgs{}, &ReadIndexArgs{}}, {&ReadIndexReply{}, &ReadIndexReply{}},
		{&CommitHeartbeatReply{}, &CommitHeartbeatReply{}},
		{&TimeoutNowArgs{}, &TimeoutNowArgs{}}, {&TimeoutNowReply{}, &TimeoutNowReply{}},
	} {
		fill(t, reflect.ValueOf(pair[0]), &seed)
		wireRoundTrip(t, reflect.ValueOf(pair[0]).Elem().Interface(), pair[1])
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Fatalf("%T changed on the wire:\n sent %+v\n got  %+v", pair[0], pair[0], pair[1])
		}
	}
}

// TestWireKeepsAnEmptyAppendEmpty: a heartbeat-like append with no entries
// and no time comes back with no entries and a zero AppendedAt.
func TestWireKeepsAnEmptyAppendEmpty(t *testing.T) {
	in := AppendArgs{Shard: 3, Req: raft.AppendEntriesRequest{Term: 9, Entries: []*raft.Log{{Index: 1}}}}
	var out AppendArgs
	wireRoundTrip(t, in, &out)
	if len(out.Req.Entries) != 1 || !out.Req.Entries[0].AppendedAt.IsZero() || out.Req.Term != 9 || out.Shard != 3 {
		t.Fatalf("got %+v", out)
	}
}

// FuzzWireDecode: no input makes a decoder panic or allocate without bound.
func FuzzWireDecode(f *testing.F) {
	var seed uint64
	var args AppendArgs
	fill(f, reflect.ValueOf(&args), &seed)
	b, _ := args.AppendBinary(nil)
	f.Add(b)
	var beats HeartbeatArgs
	fill(f, reflect.ValueOf(&beats), &seed)
	b, _ = beats.AppendBinary(nil)
	f.Add(b)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		var a AppendArgs
		if a.UnmarshalBinary(data) == nil {
			if again, _ := a.AppendBinary(nil); len(again) == 0 {
				t.Fatal("a decoded append encodes to nothing")
			}
		}
		var ar ApplyReply
		for _, m := range []encoding.BinaryUnmarshaler{&HeartbeatArgs{}, &AppendReply{}, &HeartbeatReply{},
			&ApplyArgs{}, &ar, &ReadIndexArgs{}, &ReadIndexReply{}} {
			_ = m.UnmarshalBinary(data)
		}
		c := newWireCodec(&closingBuffer{*bytes.NewBuffer(data)})
		var resp rpc.Response
		if c.ReadResponseHeader(&resp) == nil {
			_ = c.ReadResponseBody(&ar)
		}
	})
}

// TestWireMinimumSizesAreTheSmallestEncodings: the minimum element sizes
// that bound decoded counts are what the smallest elements encode to, so
// no valid message is refused and no forged count gets past them.
func TestWireMinimumSizesAreTheSmallestEncodings(t *testing.T) {
	var w wireWriter
	w.appendRequest(&raft.AppendEntriesRequest{Entries: []*raft.Log{{}}})
	var empty wireWriter
	empty.appendRequest(&raft.AppendEntriesRequest{})
	if got := len(w.b) - len(empty.b); got != minLogBytes {
		t.Errorf("an empty log entry encodes to %d bytes, minLogBytes is %d", got, minLogBytes)
	}
	beats, _ := HeartbeatArgs{Beats: []Heartbeat{{}}}.AppendBinary(nil)
	if got := len(beats) - 1; got != minHeartbeatBytes {
		t.Errorf("an empty heartbeat encodes to %d bytes, minHeartbeatBytes is %d", got, minHeartbeatBytes)
	}
	answers, _ := HeartbeatReply{Results: []HeartbeatResult{{}}}.AppendBinary(nil)
	if got := len(answers) - 1; got != minBeatReplyBytes {
		t.Errorf("an empty heartbeat answer encodes to %d bytes, minBeatReplyBytes is %d", got, minBeatReplyBytes)
	}
	// A count the bytes left cannot hold is refused before allocating.
	forged := binary.AppendUvarint(nil, 1000)
	forged = append(forged, make([]byte, 1000)...)
	var h HeartbeatArgs
	if err := h.UnmarshalBinary(forged); err == nil || len(h.Beats) != 0 {
		t.Errorf("1000 heartbeats in 1000 bytes decoded: %v, %d beats", err, len(h.Beats))
	}
}
