package fsm

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// sampleCommands holds at least one command of every op, with the edge values
// of every encoded field. The fuzz targets use them as seeds too.
func sampleCommands() []Command {
	return []Command{
		{Op: OpNoop},
		{Op: OpNoop, At: 1, HasIfVersion: true, IfVersion: 0},
		{Op: OpAppendMessages, Session: "s1", At: 1_700_000_000_000, Messages: []NewMessage{
			msg("m1", "user", "hello"),
		}},
		{Op: OpAppendMessages, Session: "chat:42@tenant-a", At: -5, HasIfVersion: true, IfVersion: math.MaxUint64,
			Messages: []NewMessage{
				msg("m1", "user", "héllo ✓", `{"lang":"fr"}`),
				msg("m2", "assistant", ""),
				msg("", "", "", "null"),
				msg("m1", "user", strings.Repeat("x", 300)),
			}},
		{Op: OpMergeFields, Session: "s", At: math.MinInt64, Fields: fields(
			"pendingMatch", `{"id":7,"score":0.5}`,
			"gone", "",
			"nullish", "null",
			"list", `[1,2,3]`,
		)},
		{Op: OpMergeFields, Session: "s", At: math.MaxInt64, Fields: map[string]json.RawMessage{}},
		{Op: OpPatchFields, Session: "s", At: 3, HasIfVersion: true, IfVersion: 1,
			Patch: json.RawMessage(`{"a":{"b":null,"c":[true]},"d":"x"}`)},
		{Op: OpPatchFields, Session: "s", Patch: json.RawMessage(`"not an object"`)},
		{Op: OpPutField, Session: "s", At: 9, Field: "bookingInfo", Value: json.RawMessage(`{"when":"tomorrow"}`)},
		{Op: OpPutField, Session: "s", Field: "", Value: nil},
		{Op: OpDeleteField, Session: "s", At: 10, HasIfVersion: true, IfVersion: 300, Field: "bookingInfo"},
		{Op: OpDeleteSession, Session: "s", At: 11},
		{Op: OpExpire, At: 12, Before: 1_700_000_000_000},
		{Op: OpExpire, Before: math.MinInt64},
		{Op: OpSetExpiry, Session: "s", At: 5, TTL: 86_400_000},
		{Op: OpSetExpiry, Session: "s", Expires: math.MaxInt64, HasIfVersion: true, IfVersion: 3},
		{Op: OpSetExpiry, Session: "s"},
		{Op: OpSetAlarm, Session: "s", Name: "remind", Due: 1_700_000_000_000, Value: json.RawMessage(`{"a":[1]}`)},
		{Op: OpSetAlarm, Session: "s", Name: "n", Due: math.MinInt64},
		{Op: OpDeleteAlarm, Session: "s", Name: "remind"},
		{Op: OpFireAlarm, Session: "s", Name: "remind", Set: math.MaxUint64, At: 3},
		{Op: OpAlarmDelivered, Session: "s", Name: "remind", Set: 7},
	}
}

// decoded is what DecodeCommand is documented to return for c: empty byte
// values (meta, patch, value, field values) come back nil, an empty batch
// comes back as a nil slice, a merge always has a non-nil map, IfVersion is
// kept only with HasIfVersion, and members the op does not use are dropped.
func decoded(c Command) Command {
	nilIfEmpty := func(b json.RawMessage) json.RawMessage {
		if len(b) == 0 {
			return nil
		}
		return b
	}
	out := Command{Op: c.Op, Session: c.Session, At: c.At, HasIfVersion: c.HasIfVersion}
	if c.HasIfVersion {
		out.IfVersion = c.IfVersion
	}
	switch c.Op {
	case OpAppendMessages:
		for _, m := range c.Messages {
			m.Meta = nilIfEmpty(m.Meta)
			out.Messages = append(out.Messages, m)
		}
	case OpMergeFields:
		out.Fields = map[string]json.RawMessage{}
		for k, v := range c.Fields {
			out.Fields[k] = nilIfEmpty(v)
		}
	case OpPatchFields:
		out.Patch = nilIfEmpty(c.Patch)
	case OpPutField:
		out.Field, out.Value = c.Field, nilIfEmpty(c.Value)
	case OpDeleteField:
		out.Field = c.Field
	case OpExpire:
		out.Before = c.Before
	case OpSetExpiry:
		out.TTL, out.Expires = c.TTL, c.Expires
	case OpSetAlarm:
		out.Name, out.Due, out.Value = c.Name, c.Due, nilIfEmpty(c.Value)
	case OpDeleteAlarm:
		out.Name = c.Name
	case OpFireAlarm, OpAlarmDelivered:
		out.Name, out.Set = c.Name, c.Set
	}
	return out
}

func TestEncodeDecodeRoundTripsEveryOp(t *testing.T) {
	seen := map[Op]bool{}
	for _, c := range sampleCommands() {
		seen[c.Op] = true
		t.Run(c.Op.String(), func(t *testing.T) {
			b := c.Encode()
			got, err := DecodeCommand(b)
			if err != nil {
				t.Fatalf("DecodeCommand: %v", err)
			}
			if want := decoded(c); !reflect.DeepEqual(*got, want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", *got, want)
			}
			if again := got.Encode(); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding the decoded command gives other bytes:\n got %x\nwant %x", again, b)
			}
		})
	}
	for op := OpNoop; op < opLimit; op++ {
		if !seen[op] {
			t.Errorf("sampleCommands has no %v command", op)
		}
	}
}

func TestEncodeIgnoresMembersTheOpDoesNotUse(t *testing.T) {
	c := Command{Op: OpDeleteSession, Session: "s", At: 5, IfVersion: 9, // no HasIfVersion
		Messages: []NewMessage{msg("m", "u", "c")}, Fields: fields("a", "1"),
		Patch: json.RawMessage(`{}`), Field: "f", Value: json.RawMessage(`1`), Before: 7}
	plain := Command{Op: OpDeleteSession, Session: "s", At: 5}
	if !bytes.Equal(c.Encode(), plain.Encode()) {
		t.Fatalf("unused members changed the encoding")
	}
}

// The command bytes are stored in the raft log, so their layout is an
// on-disk format: these golden encodings must never change.
func TestEncodeMatchesGoldenBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  Command
		hex  string
	}{{
		name: "append with ifVersion",
		cmd: Command{Op: OpAppendMessages, Session: "s1", At: 1, HasIfVersion: true, IfVersion: 7,
			Messages: []NewMessage{msg("m", "u", "hi")}},
		// version op flags | "s1" | at=zigzag(1) | ifVersion | 1 msg: "m" "u" "hi" meta=""
		hex: "01" + "02" + "01" + "027331" + "02" + "07" + "01" + "016d" + "0175" + "026869" + "00",
	}, {
		name: "merge writes keys sorted",
		cmd:  Command{Op: OpMergeFields, Session: "s", At: -1, Fields: fields("b", "2", "a", "")},
		hex:  "01" + "03" + "00" + "0173" + "01" + "02" + "0161" + "00" + "0162" + "0132",
	}, {
		name: "expire",
		cmd:  Command{Op: OpExpire, At: 2, Before: 3},
		hex:  "01" + "08" + "00" + "00" + "04" + "06",
	}, {
		name: "set-expiry",
		cmd:  Command{Op: OpSetExpiry, Session: "s", At: 2, TTL: 3, Expires: -1},
		hex:  "01" + "09" + "00" + "0173" + "04" + "06" + "01",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hex.EncodeToString(tc.cmd.Encode()); got != tc.hex {
				t.Fatalf("Encode = %s, want %s", got, tc.hex)
			}
		})
	}
}

func TestEncodeIsDeterministicForEqualCommands(t *testing.T) {
	kv := make([]string, 0, 64)
	for i := 0; i < 32; i++ {
		kv = append(kv, string(rune('a'+i%26))+strings.Repeat("k", i), "1")
	}
	want := mergeCmd("s", kv...)
	first := want.Encode()
	for i := 0; i < 20; i++ {
		c := mergeCmd("s", kv...) // a fresh map: another iteration order
		if got := c.Encode(); !bytes.Equal(got, first) {
			t.Fatalf("encoding %d differs from the first", i)
		}
	}
}

func TestDecodeDoesNotAliasItsInput(t *testing.T) {
	for _, c := range sampleCommands() {
		b := c.Encode()
		got, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("%v: %v", c.Op, err)
		}
		for i := range b {
			b[i] = 0xAA
		}
		if want := decoded(c); !reflect.DeepEqual(*got, want) {
			t.Fatalf("%v: overwriting the input changed the decoded command:\n got %+v\nwant %+v", c.Op, *got, want)
		}
	}
}

func TestDecodeRejectsUnknownFormatVersion(t *testing.T) {
	good := sampleCommands()[2].Encode()
	for _, v := range []byte{0, 2, 0x7f, 0xff} {
		b := append([]byte{v}, good[1:]...)
		c, err := DecodeCommand(b)
		if !errors.Is(err, ErrUnknownFormat) {
			t.Errorf("version %d: err = %v, want one wrapping ErrUnknownFormat", v, err)
		}
		if c != nil {
			t.Errorf("version %d: got a command with the error", v)
		}
	}
}

func TestDecodeRejectsUnknownOp(t *testing.T) {
	for _, op := range []Op{0, opLimit, 0xff} {
		b := (&Command{Op: op, Session: "s"}).Encode()
		if c, err := DecodeCommand(b); err == nil {
			t.Errorf("op %d: decoded %+v, want an error", op, c)
		} else if errors.Is(err, ErrUnknownFormat) {
			t.Errorf("op %d: err %v wraps ErrUnknownFormat; the format is known", op, err)
		}
	}
}

func TestDecodeRejectsEveryTruncation(t *testing.T) {
	for _, c := range sampleCommands() {
		b := c.Encode()
		for n := 0; n < len(b); n++ {
			if got, err := DecodeCommand(b[:n]); err == nil {
				t.Fatalf("%v: prefix of %d/%d bytes decoded to %+v, want an error", c.Op, n, len(b), got)
			}
		}
	}
}

func TestDecodeRejectsTrailingBytes(t *testing.T) {
	for _, c := range sampleCommands() {
		b := c.Encode()
		for _, extra := range [][]byte{{0}, {1}, []byte("trailing")} {
			in := append(append([]byte(nil), b...), extra...)
			if got, err := DecodeCommand(in); err == nil {
				t.Fatalf("%v + %x: decoded %+v, want an error", c.Op, extra, got)
			}
		}
	}
}

func TestDecodeRejectsCountsTheInputCannotHold(t *testing.T) {
	// A batch claiming 2^62 messages or a merge claiming 2^62 fields in a few
	// bytes must fail fast rather than allocate.
	huge := []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40}
	for _, op := range []Op{OpAppendMessages, OpMergeFields} {
		b := append([]byte{formatVersion, byte(op), 0, 1, 's', 0}, huge...)
		b = append(b, 1, 'a', 1, 'b', 0, 0)
		if got, err := DecodeCommand(b); err == nil {
			t.Errorf("%v: decoded %+v, want an error", op, got)
		}
	}
	// A string longer than what is left.
	b := []byte{formatVersion, byte(OpDeleteField), 0, 1, 's', 0, 0x7f, 'f'}
	if _, err := DecodeCommand(b); err == nil {
		t.Errorf("over-long field name decoded")
	}
	// A varint that overflows 64 bits.
	b = []byte{formatVersion, byte(OpNoop), 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}
	if _, err := DecodeCommand(b); err == nil {
		t.Errorf("overflowing varint decoded")
	}
}

func TestOpAndStatusNames(t *testing.T) {
	names := map[string]bool{}
	for op := OpNoop; op < opLimit; op++ {
		s := op.String()
		if s == "" || strings.HasPrefix(s, "op(") || names[s] {
			t.Errorf("op %d has name %q", op, s)
		}
		names[s] = true
	}
	if got := Op(0).String(); got != "op(0)" {
		t.Errorf("Op(0).String() = %q", got)
	}
	if got := opLimit.String(); !strings.HasPrefix(got, "op(") {
		t.Errorf("opLimit.String() = %q", got)
	}
	for st, want := range map[Status]string{StatusOK: "ok", StatusVersionMismatch: "version-mismatch",
		StatusNotFound: "not-found", StatusIDConflict: "id-conflict", StatusInvalid: "invalid",
		StatusTooLarge: "too-large", Status(99): "unknown"} {
		if got := st.String(); got != want {
			t.Errorf("Status(%d).String() = %q, want %q", st, got, want)
		}
	}
}
