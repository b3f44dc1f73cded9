package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/internal/baseurl"
	"github.com/sessiond/sessiond/internal/clientauth"
)

// client sends API requests to the first of several sessiond nodes that
// answers. Any node serves any request (it forwards to the shard leader),
// so the list is only for availability, not for routing.
type client struct {
	addrs   []string // normalised base URLs, no trailing slash
	timeout time.Duration
	hc      *http.Client
}

func newClient(addrList string, timeout time.Duration, creds *clientauth.Options) (*client, error) {
	addrs, err := baseurl.ParseList(addrList)
	if errors.Is(err, baseurl.ErrNone) {
		return nil, fmt.Errorf("no sessiond address given (set --addr or SESSIOND_ADDR)")
	}
	if err != nil {
		return nil, fmt.Errorf("invalid address %v", err)
	}
	rt, err := creds.Apply(http.DefaultTransport.(*http.Transport).Clone())
	if err != nil {
		return nil, err
	}
	return &client{addrs: addrs, timeout: timeout, hc: &http.Client{Transport: rt}}, nil
}

// with returns a client for other addresses sharing this one's connection
// pool, for asking a specific member.
func (c *client) with(timeout time.Duration, addrs ...string) *client {
	return &client{addrs: addrs, timeout: timeout, hc: c.hc}
}

// normalizeAddr turns "host:port", ":port" or a URL into a base URL. Members
// advertise bare host:port, users paste URLs; both must work.
// apiError is an error answered by sessiond: {"error":{"code","message"}}.
type apiError struct {
	Status  int
	Code    string
	Message string
	Addr    string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s: %s (HTTP %d from %s)", e.Code, e.Message, e.Status, e.Addr)
}

// unreachableError means no address answered at all, which is almost always
// a wrong address or a stopped cluster, so it says how to point elsewhere.
type unreachableError struct {
	addrs  []string
	reason string
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach sessiond at %s: %s (set --addr or SESSIOND_ADDR)", strings.Join(e.addrs, ", "), e.reason)
}

// response is a 2xx answer and the address that gave it.
type response struct {
	status int
	header http.Header
	body   []byte
	addr   string
}

// do sends the request to each address in turn. It moves on only when the
// request certainly was not processed (the connection was never made) or
// is a read; a write that failed after it was sent is reported, because
// sending it again elsewhere could apply it twice.
func (c *client) do(ctx context.Context, method, path string, body []byte) (*response, error) {
	var reasons []string
	for _, addr := range c.addrs {
		resp, err := c.once(ctx, method, addr, path, body)
		if err == nil {
			return resp, nil
		}
		var ae *apiError
		if errors.As(err, &ae) || ctx.Err() != nil {
			return nil, err
		}
		reason := netReason(err, c.timeout)
		if !isDialError(err) && method != http.MethodGet {
			return nil, fmt.Errorf("%s %s at %s failed after it was sent: %s; the write may or may not have been applied", method, path, addr, reason)
		}
		reasons = append(reasons, reason)
	}
	reason := reasons[0]
	for _, r := range reasons[1:] {
		if r != reason {
			reason = strings.Join(reasons, "; ")
			break
		}
	}
	return nil, &unreachableError{addrs: c.addrs, reason: reason}
}

func (c *client) once(ctx context.Context, method, addr, path string, body []byte) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, addr+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, decodeError(resp.StatusCode, data, addr)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data, addr: addr}, nil
}

// decodeError reads the API's error model; anything else (a proxy's HTML
// page, an older server) still yields a readable error.
func decodeError(status int, body []byte, addr string) *apiError {
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		return &apiError{Status: status, Code: eb.Error.Code, Message: eb.Error.Message, Addr: addr}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &apiError{Status: status, Code: fmt.Sprintf("http_%d", status), Message: msg, Addr: addr}
}

// getJSON GETs path and decodes the JSON answer into v.
func (c *client) getJSON(ctx context.Context, path string, v any) (*response, error) {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(resp.body, v); err != nil {
		return nil, fmt.Errorf("unexpected answer from %s%s: %v", resp.addr, path, err)
	}
	return resp, nil
}

// isDialError reports whether the connection was never established, so the
// server cannot have seen the request.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// netReason condenses a transport error to what an operator acts on:
// "connection refused", "no such host", "no answer within 5s".
func netReason(err error, timeout time.Duration) string {
	var dns *net.DNSError
	var se *os.SyscallError
	var op *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return "no such host " + dns.Name
		}
		return dns.Err
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return fmt.Sprintf("no answer within %v", timeout)
	case errors.As(err, &se):
		return se.Err.Error()
	case errors.As(err, &op):
		return op.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
