package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/auth"
	"github.com/sessiond/sessiond/ui"
)

// CodeNodeUnreachable: GET /v1/nodes/{id}/cluster could not get an answer
// from that node.
const CodeNodeUnreachable = "node_unreachable"

const (
	// memberViewTimeout bounds asking another node for its view: the
	// console polls every node every few seconds and must show a node that
	// stops answering as such rather than wait for it.
	memberViewTimeout = 3 * time.Second
	// maxMemberView bounds the body relayed from another node (a 1024-shard
	// view is well under 1 MiB).
	maxMemberView = 8 << 20
)

var consoleFiles = ui.Handler()

// consoleRoutes serves the web console and the two small routes it needs
// besides the public API: another member's view of the cluster, relayed so
// the page needs no cross-origin requests, and the scopes of the caller's
// token, so the page shows operations only to those who may run them.
func (s *Server) consoleRoutes() {
	e := s.echo
	e.GET("/ui", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, ui.Prefix) })
	e.GET(ui.Prefix+"*", serveConsole)
	e.HEAD(ui.Prefix+"*", serveConsole)
	e.GET("/v1/nodes/:id/cluster", s.memberCluster)
	e.GET("/v1/token", s.tokenScopes)
}

func serveConsole(c echo.Context) error {
	if !ui.Exists(c.Param("*")) {
		return errorf(http.StatusNotFound, CodeNotFound, "no such file in the console")
	}
	consoleFiles.ServeHTTP(c.Response(), c.Request())
	return nil
}

// memberCluster answers GET /v1/cluster as member :id sees it: this node's
// own view, or the other node's asked over its HTTP port with the caller's
// credentials.
func (s *Server) memberCluster(c echo.Context) error {
	id := c.Param("id")
	if id == s.store.NodeID() {
		return s.clusterStatus(c)
	}
	member, err := s.liveMember(id)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), memberViewTimeout)
	defer cancel()
	target := url.URL{Scheme: s.forward.scheme, Host: member.HTTPAddr, Path: "/v1/cluster"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return errorf(http.StatusServiceUnavailable, CodeNodeUnreachable, "node %q has no usable address", id)
	}
	if a := c.Request().Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := s.forward.proxy.Transport.RoundTrip(req)
	if err != nil {
		return unavailable(CodeNodeUnreachable, fmt.Sprintf("node %q did not answer: %v", id, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMemberView))
	if err != nil {
		return unavailable(CodeNodeUnreachable, fmt.Sprintf("node %q broke off its answer: %v", id, err))
	}
	c.Response().Header().Set(forwardedByHeader, s.store.NodeID())
	return c.Blob(resp.StatusCode, echo.MIMEApplicationJSON, body)
}

type tokenResponse struct {
	// TokensRequired is true when this node wants a token on its routes.
	TokensRequired bool     `json:"tokensRequired"`
	Scopes         []string `json:"scopes"`
}

// tokenScopes names the scopes the caller's credential holds (all of them
// when the node requires no tokens).
func (s *Server) tokenScopes(c echo.Context) error {
	resp := tokenResponse{Scopes: []string{"read", "data", "admin"}}
	if s.cfg.Auth != nil {
		resp.TokensRequired = true
		resp.Scopes = []string{}
		have, _ := s.cfg.Auth.Authenticate(c.Request())
		for _, sc := range []struct {
			bit  auth.Scope
			name string
		}{{auth.ScopeRead, "read"}, {auth.ScopeData, "data"}, {auth.ScopeAdmin, "admin"}} {
			if have.Has(sc.bit) {
				resp.Scopes = append(resp.Scopes, sc.name)
			}
		}
	}
	return c.JSON(http.StatusOK, resp)
}
