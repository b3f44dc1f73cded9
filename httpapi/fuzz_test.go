package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/httpapi"
)

// FuzzWriteRoutes sends arbitrary bodies, paths and If-Match headers to the
// write routes. Whatever arrives, the API never answers 500 and every error
// is the JSON envelope with a code: bad input is the client's problem, and
// says so.
func FuzzWriteRoutes(f *testing.F) {
	st := newFakeStore("n1", 4)
	cfg := httpapi.DefaultConfig()
	cfg.Logger = testLogger(f)
	srv := httptest.NewServer(httpapi.New(st, cfg))
	defer srv.Close()
	routes := []struct{ method, suffix string }{
		{http.MethodPost, "/messages"}, {http.MethodPut, ""}, {http.MethodPatch, ""}, {http.MethodPut, "/state/"},
		{http.MethodDelete, "/state/"}, {http.MethodPut, "/pending-match"}, {http.MethodDelete, ""},
	}
	f.Add(uint8(0), "s1", "", `{"id":"m1","role":"user","content":"hi"}`, "")
	f.Add(uint8(0), "s1", "", `{"messages":[{"role":"user","content":"a"},{"role":"bot","content":"b","meta":{"k":1}}]}`, `"3"`)
	f.Add(uint8(1), "s2", "", `{"pendingMatch":{"a":[1,2]},"bookingInfo":null}`, `"0"`)
	f.Add(uint8(2), "s2", "", `{"a":{"b":null}}`, "")
	f.Add(uint8(3), "s3", "bookingInfo", `[1,{"x":"y"}]`, `W/"1"`)
	f.Add(uint8(4), "s3", "nope", ``, `*`)
	f.Add(uint8(5), "s%2F4", "", `null`, "")
	f.Add(uint8(6), "..", "", "\x00\xff", `"18446744073709551616"`)
	client := srv.Client()
	f.Fuzz(func(t *testing.T, route uint8, session, field, body, ifMatch string) {
		r := routes[int(route)%len(routes)]
		// Escaped as a client does: what net/http refuses before routing
		// (a space in the request line, say) is TestUnparsableRequests's.
		path := "/api/chat/session/" + url.PathEscape(session) + r.suffix
		if strings.HasSuffix(r.suffix, "/") {
			path += url.PathEscape(field)
		}
		req, err := http.NewRequest(r.method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			return // not a URL a client could send
		}
		req.Header.Set("Content-Type", "application/json")
		if ifMatch != "" && !strings.ContainsAny(ifMatch, "\r\n\x00") {
			req.Header.Set("If-Match", ifMatch)
		}
		resp, err := client.Do(req)
		if err != nil {
			return // refused by net/http on our side (say, an invalid header)
		}
		defer resp.Body.Close()
		var e struct {
			Error struct{ Code, Message string }
		}
		dec := json.NewDecoder(resp.Body)
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s %q: %d", r.method, path, body, resp.StatusCode)
		}
		if resp.StatusCode >= 400 {
			if err := dec.Decode(&e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s %s %q: %d without the JSON error envelope (%v)", r.method, path, body, resp.StatusCode, err)
			}
		}
	})
}
