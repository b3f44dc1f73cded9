package fsm

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestMessageLogReturnsWhatWasAppended: every field of a message comes back
// as it went in, empty strings and absent meta included.
func TestMessageLogReturnsWhatWasAppended(t *testing.T) {
	in := []Message{
		{Seq: 1, ID: "m1", Role: "user", Content: "hello", CreatedAt: 1700, Version: 3},
		{Seq: 2, ID: "m2", Role: "", Content: "", CreatedAt: -1, Version: 4, Meta: json.RawMessage(`{"a":1}`)},
		{Seq: 3, ID: "m3", Role: "assistant", Content: "héllo ✓", Meta: json.RawMessage(`null`)},
	}
	var l messageLog
	for i := range in {
		l = l.appended(&in[i])
	}
	if got := l.slice(0, l.len()); !reflect.DeepEqual(got, in) {
		t.Fatalf("got  %+v\nwant %+v", got, in)
	}
	for i := range in {
		if l.id(i) != in[i].ID {
			t.Fatalf("id %d: %q, want %q", i, l.id(i), in[i].ID)
		}
	}
}

// TestMessageLogOlderVersionsKeepTheirMessages: appending to the newest
// version, which may share arrays with older ones, changes nothing an older
// version or a message read from it shows.
func TestMessageLogOlderVersionsKeepTheirMessages(t *testing.T) {
	var older messageLog
	for i := range 5 {
		m := Message{Seq: uint64(i + 1), ID: string(rune('a' + i)), Role: "user", Content: "first"}
		older = older.appended(&m)
	}
	read := older.at(4)
	newer := older
	for i := range 50 {
		m := Message{Seq: uint64(newer.len() + 1), ID: "n" + string(rune('a'+i%26)), Role: "assistant", Content: "second"}
		newer = newer.appended(&m)
	}
	if older.len() != 5 || !reflect.DeepEqual(older.at(4), read) {
		t.Fatalf("older version changed: %d messages, last %+v", older.len(), older.at(4))
	}
	if read.ID != "e" || read.Content != "first" || read.Seq != 5 {
		t.Fatalf("a message read from the older version changed: %+v", read)
	}
	if newer.len() != 55 || newer.at(54).Content != "second" || newer.at(4).ID != "e" {
		t.Fatalf("newer version: %d messages, %+v, %+v", newer.len(), newer.at(4), newer.at(54))
	}
}

// TestMessageRecordsHoldNoPointers: the point of messageLog is that the
// collector has nothing to follow in it; a pointer added to a record would
// quietly bring back the cost of marking every message.
func TestMessageRecordsHoldNoPointers(t *testing.T) {
	typ := reflect.TypeOf(messageRec{})
	for i := range typ.NumField() {
		switch f := typ.Field(i); f.Type.Kind() {
		case reflect.Int64, reflect.Uint64, reflect.Uint32:
		default:
			t.Errorf("messageRec.%s is a %s", f.Name, f.Type)
		}
	}
	if k := reflect.TypeOf(messageLog{}.chunks).Elem().Elem().Kind(); k != reflect.Uint8 {
		t.Errorf("messageLog.chunks hold %s", k)
	}
}

// TestIDIndexFindsEveryIDWhenHashesCollide: ids whose hashes are equal are
// still told apart, each found at its own seq, and an absent id is not
// found, whichever id took the hash first.
func TestIDIndexFindsEveryIDWhenHashesCollide(t *testing.T) {
	defer func(h func(string) uint64) { idHash = h }(idHash)
	idHash = func(string) uint64 { return 7 }
	var l messageLog
	x := newIDIndex(0)
	ids := []string{"a", "b", "c", "", "dd"}
	for i, id := range ids {
		m := Message{Seq: uint64(i + 1), ID: id}
		l = l.appended(&m)
		x.add(l, id, m.Seq)
	}
	if x.len() != len(ids) {
		t.Fatalf("%d ids indexed, want %d", x.len(), len(ids))
	}
	for i, id := range ids {
		if seq, ok := x.lookup(l, id); !ok || seq != uint64(i+1) {
			t.Fatalf("id %q: seq %d, %v; want %d", id, seq, ok, i+1)
		}
	}
	if seq, ok := x.lookup(l, "zz"); ok {
		t.Fatalf("absent id found at seq %d", seq)
	}
}

// TestMessageLogKeepsMessagesAcrossChunks: messages of every size, from
// empty to several times a chunk, come back as they went in, from the
// newest version and from every older one, however the bytes were split
// into chunks.
func TestMessageLogKeepsMessagesAcrossChunks(t *testing.T) {
	sizes := []int{0, 1, 300, firstChunk, firstChunk + 1, maxChunk - 20, maxChunk, 3 * maxChunk, 5, 700}
	var want []Message
	var versions []messageLog
	var l messageLog
	for i := range 400 {
		n := sizes[i%len(sizes)]
		m := Message{Seq: uint64(i + 1), ID: fmt.Sprintf("id-%d", i), Role: "user",
			Content: strings.Repeat(string(rune('a'+i%26)), n), CreatedAt: int64(i), Version: uint64(i + 7)}
		if i%3 == 0 {
			m.Meta = json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))
		}
		l = l.appended(&m)
		want = append(want, m)
		versions = append(versions, l)
	}
	if len(l.chunks) < 10 {
		t.Fatalf("%d chunks: the test does not cross chunk boundaries", len(l.chunks))
	}
	for v, old := range versions {
		if old.len() != v+1 {
			t.Fatalf("version %d holds %d messages", v, old.len())
		}
		for _, i := range []int{0, v / 2, v} {
			if got := old.at(i); !reflect.DeepEqual(got, want[i]) {
				t.Fatalf("version %d, message %d: got %.60v, want %.60v", v, i, got, want[i])
			}
		}
	}
	if got := l.slice(0, l.len()); !reflect.DeepEqual(got, want) {
		t.Fatal("the newest version does not return every message")
	}
	perChunk := make([]int, len(l.chunks))
	for _, r := range l.recs {
		perChunk[r.chunk]++
	}
	for i, c := range l.chunks {
		if len(c) > maxChunk && perChunk[i] != 1 {
			t.Errorf("chunk %d holds %d bytes and %d messages: only a message larger than a chunk gets one of its own", i, len(c), perChunk[i])
		}
	}
}
