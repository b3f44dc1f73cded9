package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sse"
)

// sseEvent is one Server-Sent Event as a client sees it.
type sseEvent struct{ ID, Event, Data string }

// sseStream reads the events of one change stream on a goroutine of its own.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
}

// streamClient has no overall timeout: a stream stays open.
var streamClient = &http.Client{Transport: newTransport()}

// openStream opens url as an event stream; hdr holds header name/value
// pairs. The stream is closed when the test ends.
func openStream(t testing.TB, url string, hdr ...string) *sseStream {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := streamClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		t.Fatalf("GET %s = %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent, 1024)}
	go s.read()
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) read() {
	defer close(s.events)
	r := sse.NewReader(s.resp.Body)
	for {
		ev, err := r.Next()
		if err != nil {
			return
		}
		s.events <- sseEvent{ID: ev.ID, Event: ev.Event, Data: ev.Data}
	}
}

func (s *sseStream) close() { s.resp.Body.Close() }

// next waits for the next event; ok is false when the stream ended.
func (s *sseStream) next(t testing.TB, within time.Duration) (sseEvent, bool) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
		return sseEvent{}, false
	}
}

// expect reads the next event and checks its kind.
func (s *sseStream) expect(t testing.TB, kind string) sseEvent {
	t.Helper()
	ev, ok := s.next(t, 10*time.Second)
	if !ok {
		t.Fatalf("the stream ended; want a %s event", kind)
	}
	if ev.Event != kind {
		t.Fatalf("event %+v, want a %s event", ev, kind)
	}
	return ev
}
