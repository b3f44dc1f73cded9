package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sessiond/sessiond/httpapi"
)

// A session written faster than its rate gets 429 rate_limited with
// Retry-After, and the refused write never reaches the store; other
// sessions are unaffected.
func TestWritesOverASessionsRateAre429AndNotApplied(t *testing.T) {
	st := newFakeStore("n1", 4)
	cfg := httpapi.DefaultConfig()
	cfg.Logger = testLogger(t)
	cfg.SessionWriteRate, cfg.SessionWriteBurst = 0.5, 3
	srv := httptest.NewServer(httpapi.New(st, cfg))
	t.Cleanup(srv.Close)

	post := func(session string, i int) *response {
		return call(t, http.MethodPost, srv.URL+"/api/chat/session/"+session+"/messages",
			fmt.Sprintf(`{"id":"m%d","role":"user","content":"hi"}`, i))
	}
	for i := range 3 {
		if r := post("hot", i); r.Status != http.StatusCreated {
			t.Fatalf("write %d within the burst: %v", i, r)
		}
	}
	applied := st.applies.Load()
	r := post("hot", 3)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "2" {
		t.Fatalf("write beyond the burst = %d Retry-After %q: %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	wantError(t, r, http.StatusTooManyRequests, "rate_limited")
	if st.applies.Load() != applied {
		t.Fatal("a rate-limited write reached the store")
	}
	if r := post("cold", 0); r.Status != http.StatusCreated {
		t.Fatalf("another session: %v", r)
	}
	// Reads are not limited.
	if r := call(t, http.MethodGet, srv.URL+"/api/chat/session/hot/messages", ""); r.Status != http.StatusOK {
		t.Fatalf("read of a rate-limited session: %v", r)
	}
}
