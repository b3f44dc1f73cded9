package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/shard"
)

// Cluster is what the HTTP layer needs to serve a request for a shard led by
// another node. A nil Cluster means a standalone node that serves everything
// locally.
type Cluster interface {
	// Leader names the leader of shard s and its HTTP address; local is
	// true when this node leads it. id is "" when no leader is known.
	Leader(s uint32) (id, httpAddr string, local bool)
	// HasReplica reports whether this node holds a replica of shard s.
	HasReplica(s uint32) bool
	// Members lists the nodes this node knows.
	Members() []cluster.MemberStatus
	// TransferLeadership hands leadership of shard s (led here) to node to.
	TransferLeadership(s uint32, to string) error
	// Desired is the placement of shard s over the current members.
	Desired(s uint32) []string
	// MoveInFlight is the replica move this node leads for shard s, or nil.
	MoveInFlight(s uint32) *cluster.Move
	// Alarms lists the nodes over their data quota.
	Alarms() []cluster.Alarm
}

const (
	hopsHeader        = "X-Sessiond-Hops"
	forwardedByHeader = "X-Sessiond-Forwarded-By"
	redirectHeader    = "X-Sessiond-Redirect"
	// maxHops bounds forwarding: the first node forwards to the leader it
	// knows; if leadership moved meanwhile, that node forwards once more
	// with its fresher view; after that the request fails with no_leader.
	maxHops = 2
)

type forwardTarget struct{}

// forwarder proxies requests to the node that leads their shard over pooled
// keep-alive connections, streaming bodies in both directions.
type forwarder struct {
	proxy  *httputil.ReverseProxy
	node   string
	scheme string // of other nodes' HTTP ports: http, or https with PeerTLS
}

// newForwarder proxies over TLS with tlsConf (presenting this node's
// certificate) when it is not nil.
func newForwarder(node string, tlsConf *tls.Config) *forwarder {
	transport := &http.Transport{
		TLSClientConfig:   tlsConf,
		ForceAttemptHTTP2: tlsConf != nil,
		// Nodes share a LAN: a leader that does not accept within a second
		// is gone, and a write takes milliseconds, so a connection that
		// answers nothing for 5s (a pooled one to a dead or cut-off node)
		// is given up on rather than held for the client's whole timeout.
		DialContext:           (&net.Dialer{Timeout: time.Second, KeepAlive: 15 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 5 * time.Second,
	}
	f := &forwarder{node: node, scheme: "http"}
	if tlsConf != nil {
		f.scheme = "https"
	}
	f.proxy = &httputil.ReverseProxy{
		Transport: transport,
		// Rewrite (not Director) so hop-by-hop headers are dropped after
		// our changes; the target comes from cluster state only, never
		// from the request.
		Rewrite: func(pr *httputil.ProxyRequest) {
			target := pr.In.Context().Value(forwardTarget{}).(*url.URL)
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.SetXForwarded()
			pr.Out.Header.Set(hopsHeader, strconv.Itoa(hops(pr.In)+1))
		},
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Add(forwardedByHeader, node)
			return nil
		},
		// The leader did not answer, so this node does: it names itself
		// as on every other answer (the header was dropped so that the
		// leader's own would come through).
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("X-Sessiond-Node", node)
			forwardError(w, r, err)
		},
	}
	return f
}

func hops(r *http.Request) int {
	n, err := strconv.Atoi(r.Header.Get(hopsHeader))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// forwardError answers a failed forward. A request that never reached the
// leader was not applied; one that did may have been, unless it was a read.
func forwardError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		ae = unavailable(CodeNoLeader, "could not reach the shard leader: "+op.Err.Error())
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		ae = unavailable(CodeTimeout, "the shard leader did not answer")
	case errors.Is(r.Context().Err(), context.Canceled):
		return // the client went away
	default:
		ae = unavailable(CodeOutcomeUnknown, "the connection to the shard leader failed after the request was sent; the write may or may not have been applied")
	}
	writeError(w, ae)
}

func writeError(w http.ResponseWriter, ae *apiError) {
	var body errorBody
	body.Error.Code, body.Error.Message = ae.Code, ae.Message
	w.Header().Set("Content-Type", "application/json")
	if ae.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	w.WriteHeader(ae.Status)
	_ = json.NewEncoder(w).Encode(body)
}

// routeToLeader serves the request here when this node can, and otherwise
// forwards it to (or, on request, redirects the client to) the shard leader.
// servesLocally decides which requests a non-leader replica may answer.
func (s *Server) routeToLeader(c echo.Context, sh uint32, servesLocally bool, next echo.HandlerFunc) error {
	cl := s.cfg.Cluster
	if cl == nil {
		return next(c)
	}
	if servesLocally && cl.HasReplica(sh) {
		return next(c)
	}
	leader, addr, local := cl.Leader(sh)
	if local {
		return next(c)
	}
	if leader == "" || addr == "" {
		if cl.HasReplica(sh) {
			return next(c) // the local replica answers with the precise error
		}
		return unavailable(CodeNoLeader, fmt.Sprintf("shard %d has no known leader", sh))
	}
	if hops(c.Request()) >= maxHops {
		return unavailable(CodeNoLeader, fmt.Sprintf("shard %d: leader not found within %d forwards", sh, maxHops))
	}
	if c.Request().Header.Get(redirectHeader) == "1" || c.QueryParam("redirect") == "1" {
		loc := *c.Request().URL
		loc.Scheme, loc.Host = s.forward.scheme, addr
		return c.Redirect(http.StatusTemporaryRedirect, loc.String())
	}
	s.proxyTo(c, addr)
	return nil
}

// proxyTo hands the request to the node at addr, which comes from cluster
// state, never from the request, and streams that node's answer back. A
// body a handler has read already is sent again byte for byte. The headers
// this node set about itself and the session (X-Sessiond-Node,
// X-Sessiond-Shard, ETag) are dropped: the other node sets its own.
func (s *Server) proxyTo(c echo.Context, addr string) {
	req := c.Request()
	if b, ok := keptBody(c); ok {
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
	}
	h := c.Response().Header()
	h.Del("X-Sessiond-Node")
	h.Del("X-Sessiond-Shard")
	h.Del("ETag")
	target := &url.URL{Scheme: s.forward.scheme, Host: addr}
	s.forward.proxy.ServeHTTP(c.Response(), req.WithContext(context.WithValue(req.Context(), forwardTarget{}, target)))
}

// errForwarded tells the error handler that the response has been written
// by the leader through the proxy.
var errForwarded = errors.New("forwarded to the shard leader")

// forwardIfMoved handles a local replica that turned out not to lead the
// shard (leadership moved between routing and the call): a NotLeaderError
// means nothing was applied, so the request is forwarded to the leader the
// node now knows, body included. Any other error is returned as it is.
func (s *Server) forwardIfMoved(c echo.Context, sh uint32, err error) error {
	var nle *shard.NotLeaderError
	cl := s.cfg.Cluster
	if cl == nil || !errors.As(err, &nle) || hops(c.Request()) >= maxHops {
		return err
	}
	leader, addr, local := cl.Leader(sh)
	if local || leader == "" || addr == "" {
		return err
	}
	s.proxyTo(c, addr)
	return errForwarded
}
