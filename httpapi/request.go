package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// pathParam is path parameter name as the client meant it. Echo matches
// routes on the escaped path whenever net/http keeps one (a request with
// %2F or %40 in it, say) and then hands parameters over still escaped, so
// "a%40b" would name another session than "a@b". ok is false when the
// escapes do not decode (net/http refuses such a request line already).
func pathParam(c echo.Context, name string) (v string, ok bool) {
	v = c.Param(name)
	if c.Request().URL.RawPath == "" {
		return v, true
	}
	u, err := url.PathUnescape(v)
	if err != nil {
		return v, false
	}
	return u, true
}

// sessionScope validates the :id path parameter, resolves its shard, names
// the shard on the response and sends the request to the node that may
// serve it: this node when it has a replica of the shard, else the shard
// leader.
func (s *Server) sessionScope(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, ok := pathParam(c, "id")
		if !ok {
			return errorf(http.StatusBadRequest, CodeInvalidSessionID, "session id is not a valid escaped path segment")
		}
		if err := s.cfg.Limits.ValidSessionID(id); err != nil {
			return errorf(http.StatusBadRequest, CodeInvalidSessionID, "%v", err)
		}
		sh := s.store.ShardFor(id)
		c.Response().Header().Set("X-Sessiond-Shard", strconv.FormatUint(uint64(sh), 10))
		setScope(c, id, sh)
		owner := c.Path() == "/v1/sessions/:id/owner"
		local := next
		if !owner {
			// Shed before the body is read when this node would refuse
			// the operation anyway; only a node that serves the request
			// looks at its own bounds, never one that forwards it.
			local = func(c echo.Context) error {
				if err := s.inflight.check(sh); err != nil {
					return err
				}
				return next(c)
			}
		}
		// A node with a replica serves every session request itself:
		// reads from its replica (linearizable ones through a read index),
		// writes by proposing the parsed command to the leader's node
		// over the raft port. A node without one forwards the request.
		return s.routeToLeader(c, sh, true, local)
	}
}

// Echo keeps per-request values under string keys. These are read and
// written only through the typed functions below, so that a misspelt key or
// a wrong type cannot compile.
const (
	scopeKey   = "sessiond.scope"
	rawBodyKey = "sessiond.rawBody"
)

// requestScope is the session a request under /api/chat/session/:id (or
// /v1/sessions/:id) is about, and its shard.
type requestScope struct {
	id string
	sh uint32
}

// setScope records the request's session and shard for its handler.
func setScope(c echo.Context, id string, sh uint32) {
	c.Set(scopeKey, requestScope{id: id, sh: sh})
}

// scope is the session and shard sessionScope resolved for the request.
func scope(c echo.Context) (id string, sh uint32) {
	sc := c.Get(scopeKey).(requestScope)
	return sc.id, sc.sh
}

// keepBody keeps a request body that was read, so that the request can
// still be forwarded after all.
func keepBody(c echo.Context, b []byte) { c.Set(rawBodyKey, b) }

// keptBody is the request body keepBody kept; ok is false when no handler
// has read it.
func keptBody(c echo.Context) (b []byte, ok bool) {
	b, ok = c.Get(rawBodyKey).([]byte)
	return b, ok
}

// readBody reads the whole request body up to the configured limit.
func (s *Server) readBody(c echo.Context) ([]byte, error) {
	r := http.MaxBytesReader(c.Response(), c.Request().Body, s.cfg.MaxBodyBytes)
	b, err := io.ReadAll(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
				"request body is over the limit of %d bytes", s.cfg.MaxBodyBytes)
		}
		return nil, errorf(http.StatusBadRequest, CodeInvalidJSON, "could not read the request body: %v", err)
	}
	keepBody(c, b)
	return b, nil
}

// readJSON reads a body that must be one valid JSON value.
func (s *Server) readJSON(c echo.Context) (json.RawMessage, error) {
	b, err := s.readBody(c)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, errorf(http.StatusBadRequest, CodeInvalidJSON, "request body is empty; send a JSON value")
	}
	if !json.Valid(b) {
		return nil, errorf(http.StatusBadRequest, CodeInvalidJSON, "request body is not valid JSON")
	}
	return b, nil
}

// readObject reads a body that must be a JSON object and returns its members.
func (s *Server) readObject(c echo.Context, code string) (map[string]json.RawMessage, json.RawMessage, error) {
	b, err := s.readBody(c)
	if err != nil {
		return nil, nil, err
	}
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return nil, nil, errorf(http.StatusBadRequest, CodeInvalidJSON, "request body is empty; send a JSON value")
	case b[0] != '{' && !json.Valid(b):
		return nil, nil, errorf(http.StatusBadRequest, CodeInvalidJSON, "request body is not valid JSON")
	case b[0] != '{':
		return nil, nil, errorf(http.StatusBadRequest, code, "request body must be a JSON object")
	}
	// Unmarshal checks that the whole body is valid JSON before it decodes.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, errorf(http.StatusBadRequest, CodeInvalidJSON, "request body is not valid JSON")
	}
	return m, b, nil
}

// decodeJSONString decodes v, a member of a body already checked to be valid
// JSON, as a string. Most strings have no escapes: those are their bytes
// between the quotes, as json.Unmarshal would return them, without its
// second pass over the value.
func decodeJSONString(v json.RawMessage) (string, bool) {
	if len(v) >= 2 && v[0] == '"' && bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v) {
		return string(v[1 : len(v)-1]), true
	}
	var out string
	if err := json.Unmarshal(v, &out); err != nil {
		return "", false
	}
	return out, true
}

// ifMatch parses If-Match into a command condition. It accepts the ETag
// this API sends ("42") and, leniently, a bare number.
func ifMatch(c echo.Context, cmd *fsm.Command) error {
	h := strings.TrimSpace(c.Request().Header.Get("If-Match"))
	if h == "" {
		return nil
	}
	v := strings.TrimPrefix(h, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return errorf(http.StatusBadRequest, CodeInvalidIfMatch,
			"If-Match must be a version ETag such as \"42\" (\"0\" means the session must not exist)")
	}
	cmd.HasIfVersion = true
	cmd.IfVersion = n
	return nil
}

func consistency(c echo.Context) (shard.Consistency, error) {
	level, err := shard.ParseConsistency(c.QueryParam("consistency"))
	if err != nil {
		return 0, errorf(http.StatusBadRequest, CodeInvalidConsistency, "%v", err)
	}
	return level, nil
}

// etagMatches reports whether an If-None-Match list names version (weak
// and strong forms alike) or is "*".
func etagMatches(header string, version uint64) bool {
	want := strconv.FormatUint(version, 10)
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == `"`+want+`"` {
			return true
		}
	}
	return false
}

func setETag(c echo.Context, version uint64) {
	var b [24]byte
	tag := strconv.AppendUint(append(b[:0], '"'), version, 10)
	c.Response().Header().Set("ETag", string(append(tag, '"')))
}
