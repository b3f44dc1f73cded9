package auth

import (
	"crypto/tls"
	"net/http"
	"strings"
)

// Authenticator tells which scopes an HTTP request holds. It is safe for
// concurrent use and never blocks.
type Authenticator struct {
	// Tokens holds the bearer tokens clients present; nil accepts none.
	Tokens *TokenFile
	// IsPeer reports whether a TLS connection presented a certificate that
	// the cluster CA signed, that is, whether it comes from another node;
	// nil when TLS is off.
	IsPeer func(tls.ConnectionState) bool
}

// Authenticate returns the scopes r holds, and false when it carries no
// valid credential. A node identified by its certificate holds every scope:
// nodes forward requests they have already checked and call each other's
// internal routes.
func (a *Authenticator) Authenticate(r *http.Request) (Scope, bool) {
	if r.TLS != nil && a.IsPeer != nil && a.IsPeer(*r.TLS) {
		return ScopeAdmin, true
	}
	token, ok := BearerToken(r)
	if !ok || a.Tokens == nil {
		return 0, false
	}
	return a.Tokens.Tokens().Lookup(token)
}

// BearerToken extracts the token of an "Authorization: Bearer TOKEN" header.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
