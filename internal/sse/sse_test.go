package sse

import (
	"io"
	"strings"
	"testing"
)

func TestReaderParsesEventsAndSkipsComments(t *testing.T) {
	r := NewReader(strings.NewReader(": keepalive\n\nid: 5:2\nevent: message\ndata: {\"a\":1}\n\n" +
		"event: resume\ndata: x\ndata: y\n\nid: 7\nevent: deleted\ndata:{}\n\nid: 9\n"))
	want := []Event{{"5:2", "message", `{"a":1}`}, {"", "resume", "x\ny"}, {"7", "deleted", "{}"}}
	for _, w := range want {
		got, err := r.Next()
		if err != nil || got != w {
			t.Fatalf("Next = %+v, %v; want %+v", got, err, w)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("at the end: %v, want EOF (an unterminated event is not delivered)", err)
	}
}
