package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/internal/baseurl"
)

// Config configures a Client. Only Endpoints is required.
type Config struct {
	// Endpoints are the nodes to talk to: host:port or http(s):// base
	// URLs. Any node serves any request; the list is for availability.
	// Only a client used for Exchange alone, which names the node of
	// each request, may have none.
	Endpoints []string
	// Token is sent as "Authorization: Bearer TOKEN" when not empty.
	Token string
	// TLS configures https:// endpoints (the cluster CA, a client
	// certificate); nil uses the system's roots.
	TLS *tls.Config
	// Transport replaces the client's own HTTP transport (TLS is then
	// the transport's business). Tests and load generators set it.
	Transport http.RoundTripper
	// Timeout bounds each attempt of a request; 10s when zero. A blocking
	// read gets its wait on top.
	Timeout time.Duration
	// MaxAttempts is how many times a request is sent at most when
	// sessiond answers that it was not applied (no_leader, overloaded, …)
	// or, where that is safe, when the outcome is unknown; 4 when zero, 1
	// turns retries off. Each attempt tries the endpoints in turn until
	// one can be reached.
	MaxAttempts int
	// Backoff is the wait before the second attempt, doubling up to 2s;
	// 100ms when zero. A Retry-After from the node waits longer.
	Backoff time.Duration
	// RouteToLeader sends session requests straight to the leader of the
	// session's shard (asked from GET /v1/sessions/{id}/owner and kept in
	// a cache), saving the hop from a follower to the leader. Without it
	// the first endpoint that answers serves every request.
	RouteToLeader bool
}

// Client talks to a sessiond cluster. It is safe for concurrent use; its
// methods block until sessiond answers, the context ends or every attempt
// failed. Errors are *Error values (compare them with errors.Is and the
// Err… values) or the context's error.
type Client struct {
	endpoints   []string
	hc          *http.Client
	auth        string // the Authorization header, "" for none
	timeout     time.Duration
	maxAttempts int
	backoff     time.Duration
	preferred   atomic.Uint32 // index of the endpoint that answered last
	router      *router       // nil unless RouteToLeader
}

const (
	defaultTimeout     = 10 * time.Second
	defaultMaxAttempts = 4
	defaultBackoff     = 100 * time.Millisecond
	maxBackoff         = 2 * time.Second
	maxResponseBytes   = 256 << 20
)

// New returns a client for cfg. It sends nothing; an unreachable address
// shows on the first request.
func New(cfg Config) (*Client, error) {
	c := &Client{timeout: cfg.Timeout, maxAttempts: cfg.MaxAttempts, backoff: cfg.Backoff}
	for _, e := range cfg.Endpoints {
		u, err := baseurl.Parse(e)
		if err != nil {
			return nil, fmt.Errorf("client: endpoint %v", err)
		}
		c.endpoints = append(c.endpoints, u)
	}
	if c.timeout <= 0 {
		c.timeout = defaultTimeout
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = defaultMaxAttempts
	}
	if c.backoff <= 0 {
		c.backoff = defaultBackoff
	}
	if cfg.Token != "" {
		c.auth = "Bearer " + cfg.Token
	}
	rt := cfg.Transport
	if rt == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		if cfg.TLS != nil {
			tr.TLSClientConfig = cfg.TLS.Clone()
		}
		rt = tr
	}
	// Redirects are followed by the client itself, so that a 307 to a
	// shard leader is remembered and a write's body is sent again.
	c.hc = &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	if cfg.RouteToLeader {
		c.router = newRouter()
	}
	return c, nil
}

// Endpoints returns the base URLs the client sends to, in order.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// WithEndpoints returns a client for other endpoints that shares this one's
// connections, credentials and retry settings; for asking one node.
func (c *Client) WithEndpoints(endpoints ...string) (*Client, error) {
	n := &Client{hc: c.hc, auth: c.auth, timeout: c.timeout, maxAttempts: c.maxAttempts, backoff: c.backoff}
	for _, e := range endpoints {
		u, err := baseurl.Parse(e)
		if err != nil {
			return nil, fmt.Errorf("client: endpoint %v", err)
		}
		n.endpoints = append(n.endpoints, u)
	}
	if len(n.endpoints) == 0 {
		return nil, errors.New("client: no endpoint given")
	}
	return n, nil
}

// WithTimeout returns a client like c whose attempts time out after d.
func (c *Client) WithTimeout(d time.Duration) *Client {
	n := &Client{endpoints: c.endpoints, hc: c.hc, auth: c.auth, timeout: d,
		maxAttempts: c.maxAttempts, backoff: c.backoff, router: c.router}
	n.preferred.Store(c.preferred.Load())
	return n
}

// Close closes idle connections. The client stays usable.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// safety says which failures a request may be sent again after.
type safety uint8

const (
	// readOnly requests change nothing: any failure may be retried, on
	// any endpoint.
	readOnly safety = iota
	// idempotent writes apply once however often they are sent (appends
	// whose messages all have ids or an Idempotency-Key, deletes): they
	// are retried after outcome_unknown too.
	idempotent
	// unsafe writes (PUT, PATCH, alarms, drains) are retried only when
	// sessiond said they were not applied or the connection was never
	// made; after outcome_unknown the caller decides.
	unsafe
)

// request is one API call.
type request struct {
	method      string
	path        string // path and query
	body        []byte
	ifMatch     string
	idemKey     string
	session     string // the session id of a session route, for leader routing
	safety      safety
	wait        time.Duration // a blocking read's wait, added to the timeout
	accept      string
	lastSeen    string // Last-Event-ID
	contentType string // "" for application/json
}

// response is a 2xx (or 304) answer and the endpoint that gave it.
type response struct {
	status   int
	header   http.Header
	body     []byte
	endpoint string
}

// do sends r until an answer, an error that must not be retried, or the
// last attempt.
func (c *Client) do(ctx context.Context, r *request) (*response, error) {
	var last error
	for attempt := 0; attempt < c.maxAttempts; attempt++ {
		if attempt > 0 {
			if err := c.sleep(ctx, attempt, last); err != nil {
				return nil, last
			}
		}
		resp, err := c.attempt(ctx, r)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var e *Error
		if !errors.As(err, &e) {
			return nil, err
		}
		switch {
		case e.Code == CodeOutcomeUnknown:
			if r.safety == unsafe {
				return nil, e
			}
		case e.Code == CodeUnreachable:
		case !e.Retryable():
			return nil, e
		}
		last = e
	}
	return nil, last
}

// sleep waits before attempt n: the backoff, or the node's Retry-After if
// longer. It fails when the context would end first.
func (c *Client) sleep(ctx context.Context, n int, last error) error {
	d := c.backoff << (n - 1)
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	var e *Error
	if errors.As(last, &e) && e.RetryAfter > d {
		d = e.RetryAfter
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.DeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attempt sends r once: to the shard leader when routing knows it, else to
// each endpoint in turn, starting with the one that answered last, until
// one is reached. A read also moves on after a connection that broke; a
// write that was sent is not sent elsewhere within the attempt.
func (c *Client) attempt(ctx context.Context, r *request) (*response, error) {
	if c.router != nil && r.session != "" {
		if base := c.router.leaderFor(ctx, c, r.session); base != "" {
			resp, err := c.send(ctx, base, r)
			if err == nil {
				return resp, nil
			}
			c.router.forget(r.session)
			// Unreachable, or not applied (the node no longer leads,
			// drains, …): ask the endpoints. Anything else is the answer.
			var e *Error
			if !errors.As(err, &e) || (!e.Retryable() && e.Code != CodeUnreachable) {
				return nil, err
			}
		}
	}
	n := len(c.endpoints)
	if n == 0 {
		return nil, &Error{Code: CodeUnreachable, Message: "no endpoint configured"}
	}
	start := int(c.preferred.Load()) % n
	var reasons []string
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		base := c.endpoints[idx]
		resp, err := c.send(ctx, base, r)
		if err == nil {
			c.preferred.Store(uint32(idx))
			return resp, nil
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeUnreachable {
			// A node that goes away, or whose connection broke, is not
			// the one to ask on the next attempt.
			if errors.As(err, &e) && (e.Code == CodeShuttingDown || e.Code == CodeNotReady || e.Err != nil) {
				c.preferred.Store(uint32((idx + 1) % n))
			}
			return nil, err
		}
		reasons = append(reasons, e.Message)
		c.preferred.Store(uint32((idx + 1) % n))
	}
	return nil, &Error{Code: CodeUnreachable, Message: fmt.Sprintf("cannot reach sessiond at %s: %s",
		strings.Join(c.endpoints, ", "), joinDistinct(reasons))}
}

// send sends r to base once and follows one 307 to a shard leader.
func (c *Client) send(ctx context.Context, base string, r *request) (*response, error) {
	resp, err := c.roundTrip(ctx, base+r.path, base, r)
	if err != nil || resp.status != http.StatusTemporaryRedirect {
		return resp, err
	}
	loc, lerr := resp.redirectBase(r.path)
	if lerr != nil {
		return nil, &Error{Status: resp.status, Code: CodeUnexpectedResponse, Endpoint: base, Message: lerr.Error()}
	}
	if c.router != nil && r.session != "" {
		c.router.remember(r.session, resp.header, loc)
	}
	// A 307 means the node did not process the request: sending it to
	// the leader is safe for any method.
	resp, err = c.roundTrip(ctx, loc+r.path, loc, r)
	if err == nil && resp.status == http.StatusTemporaryRedirect {
		return nil, &Error{Status: resp.status, Code: CodeNoLeader, Endpoint: loc, Message: "redirected twice; the shard's leadership is moving"}
	}
	return resp, err
}

// roundTrip is one HTTP exchange. Transport failures become CodeUnreachable
// when the request cannot have been processed (no connection) or was a
// read, and CodeOutcomeUnknown for a write that was sent.
func (c *Client) roundTrip(ctx context.Context, url, base string, r *request) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout+r.wait)
	defer cancel()
	req, err := c.newHTTPRequest(ctx, url, base, r)
	if err != nil {
		return nil, err
	}
	hr, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, base, r, err)
	}
	defer hr.Body.Close()
	data, err := readBody(hr)
	if err != nil {
		return nil, c.transportError(ctx, base, r, err)
	}
	resp := &response{status: hr.StatusCode, header: hr.Header, body: data, endpoint: base}
	if hr.StatusCode >= 300 && hr.StatusCode != http.StatusTemporaryRedirect && hr.StatusCode != http.StatusNotModified {
		return nil, DecodeError(hr.StatusCode, hr.Header, data, base)
	}
	return resp, nil
}
