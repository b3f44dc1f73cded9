package client

// One HTTP exchange: building the request, reading the answer, and naming
// what went wrong when no answer came.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/internal/baseurl"
)

// newHTTPRequest builds r's HTTP request for url, with its headers.
func (c *Client) newHTTPRequest(ctx context.Context, url, base string, r *request) (*http.Request, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, url, body)
	if err != nil {
		return nil, &Error{Code: CodeUnexpectedResponse, Endpoint: base, Message: err.Error(), Err: err}
	}
	h := req.Header
	if r.contentType != "" {
		h.Set("Content-Type", r.contentType)
	} else if r.body != nil {
		h["Content-Type"] = jsonContentType // shared, never modified: no allocation
	}
	if r.accept != "" {
		h.Set("Accept", r.accept)
	}
	if c.auth != "" {
		h.Set("Authorization", c.auth)
	}
	if r.ifMatch != "" {
		h.Set("If-Match", r.ifMatch)
	}
	if r.idemKey != "" {
		h.Set("Idempotency-Key", r.idemKey)
	}
	if r.lastSeen != "" {
		h.Set("Last-Event-ID", r.lastSeen)
	}
	if c.router != nil && r.session != "" {
		h["X-Sessiond-Redirect"] = redirectOn
	}
	return req, nil
}

var (
	jsonContentType = []string{"application/json"}
	redirectOn      = []string{"1"}
)

// readBody reads a whole answer, sized by Content-Length when it has one.
func readBody(hr *http.Response) ([]byte, error) {
	if n := hr.ContentLength; n >= 0 && n <= maxResponseBytes {
		buf := make([]byte, n)
		_, err := io.ReadFull(hr.Body, buf)
		return buf, err
	}
	return io.ReadAll(io.LimitReader(hr.Body, maxResponseBytes))
}

func (c *Client) transportError(ctx context.Context, base string, r *request, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return err
	}
	reason := netReason(err, c.timeout+r.wait)
	if r.safety == readOnly || isDialError(err) {
		return &Error{Code: CodeUnreachable, Endpoint: base, Message: reason, Err: err}
	}
	return &Error{Code: CodeOutcomeUnknown, Endpoint: base, Err: err, Message: fmt.Sprintf(
		"%s %s at %s failed after it was sent (%s); the write may or may not have been applied", r.method, r.path, base, reason)}
}

// redirectBase is the base URL of a 307's Location, whose path must be the
// request's own.
func (r *response) redirectBase(path string) (string, error) {
	loc := r.header.Get("Location")
	base, ok := strings.CutSuffix(loc, path)
	if !ok {
		return "", fmt.Errorf("redirect to %q does not keep the request's path", loc)
	}
	return baseurl.Parse(base)
}

// isDialError reports whether the connection was never made, so the node
// cannot have seen the request.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// netReason condenses a transport error to what an operator acts on.
func netReason(err error, timeout time.Duration) string {
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return "no such host " + dns.Name
		}
		return dns.Err
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Sprintf("no answer within %v", timeout)
	case errors.As(err, &op):
		return op.Err.Error()
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func joinDistinct(reasons []string) string {
	if len(reasons) == 0 {
		return "no endpoint"
	}
	for _, r := range reasons[1:] {
		if r != reasons[0] {
			return strings.Join(reasons, "; ")
		}
	}
	return reasons[0]
}

// parseETag reads a version ETag such as "42".
func parseETag(s string) (uint64, error) {
	s = strings.TrimPrefix(s, "W/")
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return 0, fmt.Errorf("ETag %q is not a version", s)
	}
	return strconv.ParseUint(s[1:len(s)-1], 10, 64)
}
