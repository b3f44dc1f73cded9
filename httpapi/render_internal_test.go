package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/sessiond/sessiond/fsm"
)

// encodingJSON renders v as the handlers did before they wrote JSON by
// hand: encoding/json without HTML escaping, no trailing newline.
func encodingJSON(t testing.TB, v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

// FuzzStringsRenderAsEncodingJSONDoes: every string, escapes, control
// characters, invalid UTF-8 and line separators included, comes out byte
// for byte as encoding/json writes it.
func FuzzStringsRenderAsEncodingJSONDoes(f *testing.F) {
	for _, s := range []string{"", "plain", `quo"te`, `back\slash`, "\x00\x01\b\f\n\r\t\x1f\x7f",
		"héllo ✓ 😀", "\xff\xfe", "a\xc3", "\u2028\u2029", "<&>", "\xed\xa0\x80", "tail\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendString(nil, s)), encodingJSON(t, s); got != want {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}

// TestMessagesRenderAsEncodingJSONDoes: messages, with and without meta,
// and the members of a page come out as encoding/json renders the same
// values.
func TestMessagesRenderAsEncodingJSONDoes(t *testing.T) {
	msgs := []fsm.Message{
		{Seq: 1, ID: "m1", Role: "user", Content: "hi \"there\"\n", CreatedAt: 1700000000000},
		{Seq: 2, ID: "m2", Role: "assistant", Content: "é", CreatedAt: -5, Meta: json.RawMessage(`{"a":[1,2]}`), Version: 9},
	}
	type page struct {
		Messages  []fsm.Message `json:"messages"`
		Version   uint64        `json:"version"`
		Total     int           `json:"total"`
		NextAfter uint64        `json:"nextAfter,omitempty"`
		HasMore   bool          `json:"hasMore"`
	}
	for _, c := range []struct {
		name string
		got  []byte
		want any
	}{
		{"append", messagesDocument(msgs, 7, nil), struct {
			Messages []fsm.Message `json:"messages"`
			Version  uint64        `json:"version"`
		}{msgs, 7}},
		{"page", messagesDocument(msgs[:1], 8, &pageInfo{Total: 2, NextAfter: 1, HasMore: true}), page{msgs[:1], 8, 2, 1, true}},
		{"empty page", messagesDocument([]fsm.Message{}, 8, &pageInfo{Total: 2}), page{[]fsm.Message{}, 8, 2, 0, false}},
	} {
		if got, want := string(c.got), encodingJSON(t, c.want)+"\n"; got != want {
			t.Errorf("%s:\ngot  %s\nwant %s", c.name, got, want)
		}
	}
}
