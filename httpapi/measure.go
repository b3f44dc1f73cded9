package httpapi

import (
	"time"

	"github.com/labstack/echo/v4"
)

// Metrics receives what the HTTP layer measures. Its methods are called on
// the request's goroutine, once per request, and must not block.
// *metrics.Registry implements it.
type Metrics interface {
	// ObserveRequest records a request once its response is written: the
	// route template that matched ("" when none), the method, the status,
	// whether this node proxied it to another node, and how long it took.
	ObserveRequest(route, method string, status int, forwarded bool, d time.Duration)
	// Refused counts a request refused before its work, by error code
	// (CodeOverloaded, CodeRateLimited).
	Refused(code string)
}

// measure wraps every request, before routing, so that requests refused by
// authorization or answered 404 are counted too. It handles the handler's
// error itself (as echo would after it) so that the status is known.
func (s *Server) measure(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		res := c.Response()
		status := res.Status
		if !res.Committed {
			// The client went away before anything was written; net/http
			// answers nothing. 499 as nginx logs it.
			status = 499
		}
		forwarded := res.Header().Get(forwardedByHeader) != ""
		s.cfg.Metrics.ObserveRequest(c.Path(), c.Request().Method, status, forwarded, time.Since(start))
		return nil
	}
}

// countRefusal reports an overload or rate-limit refusal to the metrics.
func (s *Server) countRefusal(ae *apiError) {
	if s.cfg.Metrics != nil && (ae.Code == CodeOverloaded || ae.Code == CodeRateLimited) {
		s.cfg.Metrics.Refused(ae.Code)
	}
}

// serveMetrics answers GET /metrics with the configured handler.
func (s *Server) serveMetrics(c echo.Context) error {
	s.cfg.MetricsHandler.ServeHTTP(c.Response(), c.Request())
	return nil
}
