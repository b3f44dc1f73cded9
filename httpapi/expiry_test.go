package httpapi_test

import (
	"net/http"
	"testing"
)

// A session's own expiry is set with a ttl or a time, shown by GET as
// expiresAt, and cleared; bad bodies are 400 and a missing session 404.
func TestSessionExpiryIsSetShownAndCleared(t *testing.T) {
	n := startNode(t)
	n.appendMsg("exp", "m1", "hi")
	r := n.do(http.MethodPut, sessionPath("exp", "/expiry"), `{"ttl":"24h"}`)
	wantStatus(t, r, http.StatusOK)
	var e struct {
		TTL       string
		ExpiresAt int64
		Version   uint64
	}
	decode(t, r, &e)
	_, doc := n.session("exp")
	var got struct{ ExpiresAt int64 }
	decode(t, n.get(sessionPath("exp")), &got)
	if e.TTL != "24h0m0s" || got.ExpiresAt != doc.UpdatedAt+24*3600*1000 || e.ExpiresAt != got.ExpiresAt {
		t.Fatalf("ttl expiry: response %+v, GET expiresAt %d, updatedAt %d", e, got.ExpiresAt, doc.UpdatedAt)
	}
	wantStatus(t, n.do(http.MethodPut, sessionPath("exp", "/expiry"), `{"at":4102444800000}`), http.StatusOK)
	decode(t, n.get(sessionPath("exp")), &got)
	if got.ExpiresAt != 4102444800000 {
		t.Fatalf("fixed expiry: GET expiresAt %d", got.ExpiresAt)
	}
	wantStatus(t, n.do(http.MethodDelete, sessionPath("exp", "/expiry"), nil), http.StatusOK)
	got.ExpiresAt = 0
	decode(t, n.get(sessionPath("exp")), &got)
	if got.ExpiresAt != 0 {
		t.Fatalf("cleared expiry still shown: %d", got.ExpiresAt)
	}
	for _, bad := range []string{`{"ttl":"soon"}`, `{"ttl":"10ms"}`, `{"ttl":"1h","at":5}`, `{"at":-1}`, `{"when":1}`, `[]`} {
		wantError(t, n.do(http.MethodPut, sessionPath("exp", "/expiry"), bad), http.StatusBadRequest, "invalid_expiry")
	}
	wantError(t, n.do(http.MethodPut, sessionPath("nobody", "/expiry"), `{"ttl":"1h"}`), http.StatusNotFound, "session_not_found")
}
