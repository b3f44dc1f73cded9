package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/client"
)

// clients are the HTTP clients of a run and the connections they dialed.
// Over HTTP/1.1 there is one client, whose pool holds a keep-alive
// connection per worker and node. With --h2c there is one client per
// HTTP/2 connection per node (--h2c-conns): a Transport multiplexes all its
// requests to a node over one connection, so N connections per node take N
// Transports, and the workers are spread evenly over them.
type clients struct {
	list  []*client.Client
	dials atomic.Int64 // TCP connections dialed, the --h2c check's included
}

func newClients(cfg *config) *clients {
	c := &clients{}
	n := 1
	if cfg.h2c {
		n = cfg.h2cConns
	}
	for range n {
		c.list = append(c.list, c.newClient(cfg))
	}
	return c
}

// forWorker is the client worker i sends with.
func (c *clients) forWorker(i int) *client.Client { return c.list[i%len(c.list)] }

func (c *clients) closeIdle() {
	for _, cl := range c.list {
		cl.Close()
	}
}

// newClient sizes one client for the run. Over HTTP/1.1 it keeps enough
// idle keep-alive connections per node for every worker, so that the
// benchmark measures requests, not TCP handshakes. With --h2c it speaks
// only HTTP/2 with prior knowledge, and MaxConnsPerHost 1 keeps the workers'
// first requests from each dialing a connection of their own (net/http
// would keep one and close the rest): one connection per node is shared,
// and a second is dialed only if the first has as many requests in flight
// as the server's SETTINGS_MAX_CONCURRENT_STREAMS allows. Redirects are not
// followed (a 307 shows in the status counts) and environment proxies are
// ignored. Workers send through Exchange: once, no retries, so every
// attempt is counted.
func (c *clients) newClient(cfg *config) *client.Client {
	dialer := &net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c.dials.Add(1)
		return dialer.DialContext(ctx, network, addr)
	}
	var rt http.RoundTripper
	if cfg.leanHTTP1 {
		rt = newH1Transport(dial, cfg.concurrency)
	} else {
		rt = c.netHTTPTransport(cfg, dial)
	}
	cl, err := client.New(client.Config{Endpoints: cfg.addrs, Transport: rt, Token: cfg.creds.Token,
		Timeout: cfg.timeout, MaxAttempts: 1, RouteToLeader: cfg.routeLeader})
	if err != nil {
		panic(err) // the addresses were checked by parseFlags
	}
	return cl
}

// netHTTPTransport is net/http's Transport, for https:// addresses, --h2c
// and --http1 net/http.
func (c *clients) netHTTPTransport(cfg *config, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	tr := &http.Transport{
		DialContext:           dial,
		MaxIdleConns:          cfg.concurrency * len(cfg.addrs),
		MaxIdleConnsPerHost:   cfg.concurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.timeout,
		ResponseHeaderTimeout: cfg.timeout,
		DisableCompression:    true,
	}
	tr.Protocols = new(http.Protocols)
	tr.ForceAttemptHTTP2 = false
	if cfg.h2c {
		tr.Protocols.SetUnencryptedHTTP2(true)
		tr.MaxConnsPerHost = 1
	} else {
		// HTTP/1.1 over https:// too, where ALPN would otherwise pick
		// HTTP/2: the run measures what its report says it measures.
		tr.Protocols.SetHTTP1(true)
	}
	if cfg.tls != nil {
		tr.TLSClientConfig = cfg.tls.Clone()
	}
	return tr
}

// checkH2C sends GET /healthz to every node over every client before the
// run, so that a node that does not speak HTTP/2 with prior knowledge ends
// the run at once with the reason, rather than as a report full of
// transport errors. It also opens the connections the run then shares,
// with the server's SETTINGS already known.
func (c *clients) checkH2C(cfg *config) error {
	for _, cl := range c.list {
		for _, base := range cfg.addrs {
			if err := probeH2C(cl, base); err != nil {
				return fmt.Errorf("--h2c: %s does not speak HTTP/2 over cleartext with prior knowledge (%v); "+
					"if it is sessiond, it runs with --h2c=false or behind an HTTP/1-only proxy; leave --h2c out to use HTTP/1.1", base, err)
			}
		}
	}
	return nil
}

func probeH2C(cl *client.Client, base string) error {
	rep, err := cl.Exchange(context.Background(), base, client.Call{Method: http.MethodGet, Path: "/healthz"})
	if _, failed := client.TransportFailure(err); failed {
		return err // any answer, even an error, shows the protocol
	}
	if !strings.HasPrefix(rep.Proto, "HTTP/2") {
		return fmt.Errorf("answered in %s", rep.Proto)
	}
	return nil
}

// learnLeaders asks, for every session of the run, which node leads its
// shard, on every client, so that --route leader measures routed requests
// rather than lookups. It returns how many sessions got a leader. The
// lookups run --concurrency at a time.
func (c *clients) learnLeaders(cfg *config) int {
	var known atomic.Int64
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(cfg.concurrency, cfg.sessions) {
		wg.Go(func() {
			for n := next.Add(1) - 1; n < int64(cfg.sessions); n = next.Add(1) - 1 {
				found := true
				for _, cl := range c.list {
					found = cl.LeaderEndpoint(context.Background(), sessionID(cfg.prefix, int(n))) != "" && found
				}
				if found {
					known.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(known.Load())
}
