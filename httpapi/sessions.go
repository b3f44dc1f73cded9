package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// apply proposes cmd for the request's session and turns shard errors and
// non-OK results into API errors. On success it sets the ETag.
func (s *Server) apply(c echo.Context, cmd *fsm.Command) (*fsm.Result, error) {
	id, sh := scope(c)
	cmd.Session = id
	now := time.Now()
	if ok, wait := s.limiter.allow(id, now); !ok {
		return nil, &apiError{Status: http.StatusTooManyRequests, Code: CodeRateLimited,
			Message:    fmt.Sprintf("session %q is written faster than this node allows (%g writes/s)", id, s.cfg.SessionWriteRate),
			RetryAfter: int(math.Ceil(wait.Seconds()))}
	}
	cmd.At = now.UnixMilli()
	res := s.precheck(c.Request().Context(), sh, cmd)
	if res == nil {
		var err error
		if res, err = s.boundedApply(c.Request().Context(), sh, cmd); err != nil {
			return nil, s.forwardIfMoved(c, sh, err)
		}
	}
	if res.Status != fsm.StatusOK {
		if res.Session != nil {
			setETag(c, res.Version)
		}
		return nil, resultError(res)
	}
	setETag(c, res.Version)
	return res, nil
}

// precheck answers a write that is certain to fail without appending a log
// entry: a conditional write whose If-Match no longer holds, or a delete of
// something that does not exist. The local replica's state is a cheap
// first look; only when it predicts a failure is the verdict confirmed on a
// linearizable read, so that the answer is what Apply would have given at
// a moment within the request. Writes that may succeed pay nothing extra,
// and any doubt (an error on the read) goes to raft, where Apply checks
// again. nil means: propose the command.
func (s *Server) precheck(ctx context.Context, sh uint32, cmd *fsm.Command) *fsm.Result {
	if !fsm.Prechecked(cmd) {
		return nil
	}
	local, err := s.store.Read(ctx, sh, shard.Stale)
	if err != nil || local.Precheck(cmd) == nil {
		return nil
	}
	state, err := s.boundedRead(ctx, sh, shard.Linearizable)
	if err != nil {
		return nil
	}
	return state.Precheck(cmd)
}

// load reads the request's session at the consistency the query asks for.
// A missing session is a 404 session_not_found.
func (s *Server) load(c echo.Context) (*fsm.Session, error) {
	id, sh := scope(c)
	level, err := consistency(c)
	if err != nil {
		return nil, err
	}
	state, err := s.boundedRead(c.Request().Context(), sh, level)
	if err != nil {
		return nil, s.forwardIfMoved(c, sh, err)
	}
	c.Response().Header().Set("X-Sessiond-Applied-Index", strconv.FormatUint(state.AppliedIndex(), 10))
	sess, ok := state.Get(id)
	if !ok {
		return nil, errorf(http.StatusNotFound, CodeSessionNotFound, "session %q not found", id)
	}
	setETag(c, sess.Version)
	return sess, nil
}

func (s *Server) getSession(c echo.Context) error {
	sess, err := s.load(c)
	if err != nil {
		return err
	}
	if inm := c.Request().Header.Get("If-None-Match"); inm != "" && etagMatches(inm, sess.Version) {
		return c.NoContent(http.StatusNotModified) // the client's copy is current
	}
	return c.JSONBlob(http.StatusOK, sessionDocument(sess, s.expiresAt(sess)))
}

// putSession is the seed's partial update: a top-level merge of fields that
// creates the session if it is absent. Messages are appended elsewhere.
func (s *Server) putSession(c echo.Context) error {
	members, _, err := s.readObject(c, CodeInvalidFields)
	if err != nil {
		return err
	}
	if _, ok := members["messages"]; ok {
		return errorf(http.StatusBadRequest, CodeMessagesNotAllowed,
			"PUT does not take messages; POST them to /api/chat/session/{id}/messages")
	}
	if err := s.checkFieldNames(members); err != nil {
		return err
	}
	cmd := &fsm.Command{Op: fsm.OpMergeFields, Fields: members}
	return s.writeFields(c, cmd)
}

// patchSession applies an RFC 7396 merge patch to the fields.
func (s *Server) patchSession(c echo.Context) error {
	members, raw, err := s.readObject(c, CodeInvalidFields)
	if err != nil {
		return err
	}
	if _, ok := members["messages"]; ok {
		return errorf(http.StatusBadRequest, CodeMessagesNotAllowed,
			"PATCH does not take messages; POST them to /api/chat/session/{id}/messages")
	}
	if err := s.checkFieldNames(members); err != nil {
		return err
	}
	return s.writeFields(c, &fsm.Command{Op: fsm.OpPatchFields, Patch: raw})
}

func (s *Server) writeFields(c echo.Context, cmd *fsm.Command) error {
	if err := s.checkFieldsSize(cmd); err != nil {
		return err
	}
	if err := ifMatch(c, cmd); err != nil {
		return err
	}
	res, err := s.apply(c, cmd)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	// A result forwarded from the leader does not carry the session's own
	// expiry; GET shows it.
	return c.JSONBlob(status, sessionDocument(res.Session, 0))
}

// checkFieldNames rejects reserved or malformed names before proposing.
func (s *Server) checkFieldNames(members map[string]json.RawMessage) error {
	for name := range members {
		if err := s.cfg.Limits.ValidFieldName(name); err != nil {
			return errorf(http.StatusBadRequest, CodeInvalidFieldName, "%v", err)
		}
	}
	return nil
}

// checkFieldsSize rejects a write whose own field values already exceed the
// per-session field limit; the FSM checks the resulting total.
func (s *Server) checkFieldsSize(cmd *fsm.Command) error {
	n := len(cmd.Patch) + len(cmd.Value) + len(cmd.Field)
	for k, v := range cmd.Fields {
		n += len(k) + len(v)
	}
	if n > s.cfg.Limits.MaxFieldBytes {
		return errorf(http.StatusRequestEntityTooLarge, CodeSessionTooLarge,
			"fields are over the limit of %d bytes per session", s.cfg.Limits.MaxFieldBytes)
	}
	return nil
}

func (s *Server) deleteSession(c echo.Context) error {
	cmd := &fsm.Command{Op: fsm.OpDeleteSession}
	if err := ifMatch(c, cmd); err != nil {
		return err
	}
	if _, err := s.apply(c, cmd); err != nil {
		return err
	}
	c.Response().Header().Del("ETag")
	return c.NoContent(http.StatusNoContent)
}
