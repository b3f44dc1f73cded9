package httpapi

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/auth"
)

// Authenticator tells which scopes a request's credentials hold; ok is false
// when it carries none that are valid. *auth.Authenticator implements it.
type Authenticator interface {
	Authenticate(r *http.Request) (scope auth.Scope, ok bool)
}

// Error codes of authentication and authorization.
const (
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
)

// requiredScope is what a request needs, decided from its method and path
// alone so that unknown routes are denied too (deny by default). The health
// checks are open: orchestrators probe them without credentials; so are the
// console's static files, which hold no data (the page sends the user's
// token with every API request it makes). /metrics needs the read scope,
// like the /v1 reads: it shows counts and timings, never session contents,
// and a Prometheus scraper holds a read token.
func requiredScope(method, path string) (scope auth.Scope, open bool) {
	switch {
	case path == "/healthz" || path == "/readyz":
		return 0, true
	case (path == "/ui" || strings.HasPrefix(path, "/ui/")) && (method == http.MethodGet || method == http.MethodHead):
		return 0, true
	case strings.HasPrefix(path, "/api/"):
		return auth.ScopeData, false
	case path == "/v1/backup":
		return auth.ScopeAdmin, false // the whole data set
	case (strings.HasPrefix(path, "/v1/") || path == "/metrics") && (method == http.MethodGet || method == http.MethodHead):
		return auth.ScopeRead, false
	}
	return auth.ScopeAdmin, false
}

// authorize runs before routing: a request without a valid credential gets
// 401, one whose credential lacks the route's scope 403, and neither reaches
// a handler or the cluster.
func (s *Server) authorize(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		need, open := requiredScope(r.Method, r.URL.Path)
		if open {
			return next(c)
		}
		have, ok := s.cfg.Auth.Authenticate(r)
		if !ok {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="sessiond"`)
			return errorf(http.StatusUnauthorized, CodeUnauthorized, "this node requires a token: send Authorization: Bearer TOKEN")
		}
		if !have.Has(need) {
			return errorf(http.StatusForbidden, CodeForbidden, "the token's scope (%s) does not allow this request; it needs %s", have, need)
		}
		return next(c)
	}
}
