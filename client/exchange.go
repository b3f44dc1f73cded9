package client

import (
	"context"
	"errors"
	"io"
	"net/http"
)

// Reply is one HTTP answer as Exchange reads it.
type Reply struct {
	Status int
	Header http.Header
	Proto  string // "HTTP/1.1", "HTTP/2.0"
	Body   []byte // nil unless Exchange was asked to keep it
}

// Call is one request for Exchange.
type Call struct {
	Method string
	Path   string // from the endpoint's base URL, query included
	Body   []byte // sent as application/json unless ContentType says otherwise
	// ContentType overrides the body's media type, for example
	// application/merge-patch+json.
	ContentType    string
	IfMatch        string // a version ETag such as "42" (with the quotes); "" sends none
	IdempotencyKey string
	KeepBody       bool // keep the answer's body (up to 64 KiB of an error's) in Reply.Body
}

// Exchange sends one request to endpoint (a base URL as Endpoints returns
// them) exactly once: no retry, no failover, no routing. It is for load
// generators and checkers that account for every attempt themselves and
// build their own bodies; everything else wants the typed methods.
//
// An answer of 300 or more comes back as the Reply and an *Error decoded
// from it (its RetryAfter set from the header). A transport failure is an
// *Error with CodeUnreachable (nothing can have been applied, or a read)
// or CodeOutcomeUnknown (a write that was sent), whose Err is the
// transport's error; TransportFailure tells the two kinds of error apart. The body of a successful answer is read to the end,
// and kept only with KeepBody, so that the connection is reused.
func (c *Client) Exchange(ctx context.Context, endpoint string, call Call) (Reply, error) {
	r := request{method: call.Method, path: call.Path, body: call.Body, safety: unsafe,
		ifMatch: call.IfMatch, idemKey: call.IdempotencyKey, contentType: call.ContentType}
	if call.Method == http.MethodGet || call.Method == http.MethodHead {
		r.safety = readOnly
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := c.newHTTPRequest(ctx, endpoint+call.Path, endpoint, &r)
	if err != nil {
		return Reply{}, err
	}
	hr, err := c.hc.Do(req)
	if err != nil {
		return Reply{}, c.transportError(ctx, endpoint, &r, err)
	}
	defer hr.Body.Close()
	rep := Reply{Status: hr.StatusCode, Header: hr.Header, Proto: hr.Proto}
	if hr.StatusCode >= 300 && hr.StatusCode != http.StatusNotModified {
		data, err := io.ReadAll(io.LimitReader(hr.Body, errorBodyLimit))
		if err != nil {
			return rep, c.transportError(ctx, endpoint, &r, err)
		}
		_, _ = io.Copy(io.Discard, hr.Body)
		if call.KeepBody {
			rep.Body = data
		}
		return rep, DecodeError(hr.StatusCode, hr.Header, data, endpoint)
	}
	if call.KeepBody {
		rep.Body, err = readBody(hr)
	} else {
		_, err = io.Copy(io.Discard, hr.Body)
	}
	if err != nil {
		return rep, c.transportError(ctx, endpoint, &r, err)
	}
	return rep, nil
}

// errorBodyLimit bounds how much of an error answer is read for its code.
const errorBodyLimit = 64 << 10

// TransportFailure reports whether err, from Exchange, means that no answer
// came, and returns the transport's own error (a *net.OpError, a timeout,
// …) for callers that classify it.
func TransportFailure(err error) (error, bool) {
	var e *Error
	if err == nil || (errors.As(err, &e) && e.Status != 0) {
		return nil, false
	}
	if e != nil && e.Err != nil {
		return e.Err, true
	}
	return err, true
}
