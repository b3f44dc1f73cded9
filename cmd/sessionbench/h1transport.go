package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// h1Transport is the load generator's HTTP/1.1 transport for http://
// addresses: each request is written, and its response read in full, on
// the worker's own goroutine, over a keep-alive connection from a pool per
// host. net/http's Transport hands every request to a write goroutine of
// its connection and takes the response back from a read goroutine, four
// goroutine hand-offs a request; on a machine where the load generator
// shares its cores with the nodes it measures, that cost is taken from the
// nodes (BENCHMARKS.md). What goes over the wire is the same: a request
// written by http.Request.Write, a response parsed by http.ReadResponse.
//
// The request's context bounds the exchange through its deadline, which
// the connection is given; a context without one is not watched (the
// workers always have one). A connection is put back only after a complete
// exchange that did not ask to close it; one that fails is closed, and the
// request is not retried. Nothing reads an idle connection, so a server
// that closes one (a node restarting, or an idle timeout) shows as the
// transport error of the next request on it, where net/http would have
// seen the close; connections idle longer than maxIdleAge are not reused.
type h1Transport struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu   sync.Mutex
	idle map[string][]*h1Conn // by host:port; at most maxIdle each
	// maxIdle bounds the idle connections kept per host, like
	// MaxIdleConnsPerHost.
	maxIdle int
	// maxIdleAge is how long a connection may sit idle and still be used:
	// a server closes idle connections after a while (sessiond after two
	// minutes), and with no goroutine reading an idle connection the close
	// would only show as a failed request.
	maxIdleAge time.Duration
}

type h1Conn struct {
	net.Conn
	r         *bufio.Reader
	w         *bufio.Writer
	idleSince time.Time
}

// defaultMaxIdleAge stays well inside sessiond's two-minute idle timeout.
const defaultMaxIdleAge = 30 * time.Second

func newH1Transport(dial func(ctx context.Context, network, addr string) (net.Conn, error), maxIdle int) *h1Transport {
	return &h1Transport{dial: dial, idle: map[string][]*h1Conn{}, maxIdle: maxIdle, maxIdleAge: defaultMaxIdleAge}
}

// errH1Scheme is returned for a request this transport does not speak.
var errH1Scheme = errors.New("sessionbench: the HTTP/1.1 transport speaks http:// only")

// RoundTrip implements http.RoundTripper. The response body is already in
// memory.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		closeBody(req)
		return nil, errH1Scheme
	}
	host := req.URL.Host
	if req.URL.Port() == "" {
		host = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	c, err := t.get(req.Context(), host)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := c.exchange(req)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.Close || req.Close {
		c.Close()
	} else {
		t.put(host, c)
	}
	return resp, nil
}

// closeBody closes the body of a request that is not sent, as a
// RoundTripper must.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func (c *h1Conn) exchange(req *http.Request) (*http.Response, error) {
	deadline, _ := req.Context().Deadline() // zero: none
	if err := c.SetDeadline(deadline); err != nil {
		closeBody(req) // Write, which would have closed it, is not reached
		return nil, err
	}
	if err := req.Write(c.w); err != nil {
		return nil, err
	}
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.r, req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if c.r.Buffered() > 0 {
		// Bytes past the response: the connection is out of step.
		return nil, fmt.Errorf("sessionbench: %d bytes after the response from %s", c.r.Buffered(), c.RemoteAddr())
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// get takes an idle connection to host that has not sat idle for too
// long, or dials one.
func (t *h1Transport) get(ctx context.Context, host string) (*h1Conn, error) {
	var stale []*h1Conn
	t.mu.Lock()
	for conns := t.idle[host]; len(conns) > 0; conns = t.idle[host] {
		c := conns[len(conns)-1]
		t.idle[host] = conns[:len(conns)-1]
		if time.Since(c.idleSince) <= t.maxIdleAge {
			t.mu.Unlock()
			closeAll(stale)
			return c, nil
		}
		stale = append(stale, c)
	}
	t.mu.Unlock()
	closeAll(stale)
	nc, err := t.dial(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	return &h1Conn{Conn: nc, r: bufio.NewReaderSize(nc, 16<<10), w: bufio.NewWriterSize(nc, 8<<10)}, nil
}

func (t *h1Transport) put(host string, c *h1Conn) {
	c.idleSince = time.Now()
	t.mu.Lock()
	if len(t.idle[host]) < t.maxIdle {
		t.idle[host] = append(t.idle[host], c)
		c = nil
	}
	t.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// CloseIdleConnections closes the pooled connections; http.Client calls it
// through its own CloseIdleConnections.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*h1Conn{}
	t.mu.Unlock()
	for _, conns := range idle {
		closeAll(conns)
	}
}

func closeAll(conns []*h1Conn) {
	for _, c := range conns {
		c.Close()
	}
}
