package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
)

// Stream is a streamed answer: an archive being read. The caller must
// close it.
type Stream struct {
	io.ReadCloser
	Header   http.Header // the answer's headers (X-Sessiond-Shard-Count, …)
	Endpoint string      // the node that answers
}

// Backup starts GET /v1/backup (the admin scope) on the first endpoint that
// takes the connection and returns the archive as it arrives, a tar of
// every shard's snapshot with a manifest last (see the backup package).
// consistency is "linearizable" (every write acknowledged before the call),
// "stale" (each shard as a replica holds it; for a shard that lost its
// quorum) or "" for the node's default. Only ctx bounds the transfer:
// an archive can be large.
func (c *Client) Backup(ctx context.Context, consistency string) (*Stream, error) {
	path := "/v1/backup"
	if consistency != "" {
		path += "?consistency=" + url.QueryEscape(consistency)
	}
	hr, base, err := c.stream(ctx, http.MethodGet, path, nil, 0)
	if err != nil {
		return nil, err
	}
	return &Stream{ReadCloser: hr.Body, Header: hr.Header, Endpoint: base}, nil
}

// Restore sends an archive of size bytes, read from r, to POST /v1/restore
// (the admin scope) on the first endpoint that takes the connection, and
// returns that endpoint. The node verifies the whole archive and refuses a
// damaged one (ErrInvalidBackup), a cluster with another shard count or
// one that holds sessions, changing nothing. It is not retried once sent:
// r has been read; restoring the same archive again is safe.
func (c *Client) Restore(ctx context.Context, r io.Reader, size int64) (string, error) {
	hr, base, err := c.stream(ctx, http.MethodPost, "/v1/restore", r, size)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(hr.Body, maxResponseBytes))
	hr.Body.Close()
	return base, nil
}

// stream makes one request whose body or answer is streamed, trying the
// next endpoint only when a connection could not be made (so nothing of
// body was read). A non-2xx answer is an *Error.
func (c *Client) stream(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, string, error) {
	var last error
	for _, base := range c.endpoints {
		req, err := http.NewRequestWithContext(ctx, method, base+path, body)
		if err != nil {
			return nil, base, &Error{Code: CodeUnexpectedResponse, Endpoint: base, Message: err.Error(), Err: err}
		}
		if body != nil {
			req.ContentLength = size
			req.Header.Set("Content-Type", "application/x-tar")
		}
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		hr, err := c.hc.Do(req)
		if err != nil {
			r := &request{method: method, path: path, safety: readOnly}
			if body != nil {
				r.safety = unsafe
			}
			last = c.transportError(ctx, base, r, err)
			if isDialError(err) {
				continue
			}
			return nil, base, last
		}
		if hr.StatusCode/100 != 2 {
			data, _ := readBody(hr)
			hr.Body.Close()
			return nil, base, DecodeError(hr.StatusCode, hr.Header, data, base)
		}
		return hr, base, nil
	}
	return nil, "", last
}
