package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// Error codes. Each is stable API: clients switch on them.
const (
	CodeInvalidSessionID   = "invalid_session_id"
	CodeInvalidJSON        = "invalid_json"
	CodeInvalidMessage     = "invalid_message"
	CodeInvalidFields      = "invalid_fields"
	CodeInvalidFieldName   = "invalid_field_name"
	CodeMessagesNotAllowed = "messages_not_allowed"
	CodeTooManyMessages    = "too_many_messages"
	CodeContentTooLarge    = "content_too_large"
	CodeBodyTooLarge       = "body_too_large"
	CodeSessionTooLarge    = "session_too_large"
	CodeInvalidConsistency = "invalid_consistency"
	CodeInvalidLimit       = "invalid_limit"
	CodeInvalidAfter       = "invalid_after"
	CodeInvalidIfMatch     = "invalid_if_match"
	CodeVersionMismatch    = "version_mismatch"
	CodeIDConflict         = "id_conflict"
	CodeSessionNotFound    = "session_not_found"
	CodeFieldNotFound      = "field_not_found"
	CodeNotFound           = "not_found"
	CodeMethodNotAllowed   = "method_not_allowed"
	CodeNoLeader           = "no_leader"
	CodeNotReady           = "not_ready"
	CodeOverloaded         = "overloaded"
	CodeOutcomeUnknown     = "outcome_unknown"
	CodeShuttingDown       = "shutting_down"
	CodeShardUnavailable   = "shard_unavailable"
	CodeTimeout            = "timeout"
	CodeInvalidShard       = "invalid_shard"
	CodeNoOtherReplica     = "no_other_replica"
	CodeTransferFailed     = "transfer_failed"
	CodeNodeNotFound       = "node_not_found"
	CodeNodeNotAlive       = "node_not_alive"
	CodeInternal           = "internal"
	CodeInsufficientSpace  = "insufficient_storage"
)

// apiError is an error with an HTTP status and a stable code. It renders as
// {"error":{"code":"…","message":"…"}}.
type apiError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter int // seconds; sets Retry-After when > 0
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func unavailable(code, msg string) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Code: code, Message: msg, RetryAfter: 1}
}

// storeError translates a shard error into the API's error. The codes keep
// "not applied, retry" (no_leader, overloaded, …) apart from "may have been
// applied" (outcome_unknown), which only an idempotent retry may follow.
func storeError(err error) *apiError {
	var nle *shard.NotLeaderError
	var nh *shard.NotHostedError
	var nsp *cluster.NoSpaceError
	switch {
	case errors.As(err, &nsp):
		return errorf(http.StatusInsufficientStorage, CodeInsufficientSpace, "%s", nsp.Error())
	case errors.Is(err, shard.ErrOutcomeUnknown):
		return unavailable(CodeOutcomeUnknown, "the write may or may not have been applied; retry it with the same message ids or check the session")
	case errors.As(err, &nle):
		return unavailable(CodeNoLeader, nle.Error())
	case errors.Is(err, shard.ErrNoLeader):
		// A follower's forward to a leader that has since lost its term
		// (shard.Host.applyAt), or a replica move's membership check.
		return unavailable(CodeNoLeader, err.Error())
	case errors.Is(err, shard.ErrNotEnqueued):
		return unavailable(CodeOverloaded, err.Error())
	case errors.Is(err, shard.ErrNotReady):
		return unavailable(CodeNotReady, err.Error())
	case errors.Is(err, shard.ErrShutdown):
		return unavailable(CodeShuttingDown, err.Error())
	case errors.As(err, &nh):
		return unavailable(CodeShardUnavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return unavailable(CodeTimeout, "the request timed out before the shard answered")
	}
	return nil
}

// resultError translates a non-OK FSM result.
func resultError(res *fsm.Result) *apiError {
	switch res.Status {
	case fsm.StatusVersionMismatch:
		return errorf(http.StatusPreconditionFailed, CodeVersionMismatch,
			"If-Match does not match the session's version %d", res.Version)
	case fsm.StatusIDConflict:
		return errorf(http.StatusConflict, CodeIDConflict, "%s", res.Detail)
	case fsm.StatusNotFound:
		if res.Session != nil {
			return errorf(http.StatusNotFound, CodeFieldNotFound, "%s", res.Detail)
		}
		return errorf(http.StatusNotFound, CodeSessionNotFound, "%s", res.Detail)
	case fsm.StatusTooLarge:
		return errorf(http.StatusRequestEntityTooLarge, CodeSessionTooLarge, "%s", res.Detail)
	case fsm.StatusInvalid:
		return errorf(http.StatusBadRequest, CodeInvalidFields, "%s", res.Detail)
	}
	return nil
}

// errorBody is the error model on the wire, declared once with the Go
// client that reads it.
type errorBody = client.ErrorBody

// handleError is echo's error handler: every error leaves as the JSON error
// model, never as echo's default body.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed || errors.Is(err, errForwarded) {
		return
	}
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		ae = fromEchoError(he)
	default:
		if se := storeError(err); se != nil {
			ae = se
		} else {
			s.logger.Error("request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
			ae = errorf(http.StatusInternalServerError, CodeInternal, "internal error")
		}
	}
	s.countRefusal(ae)
	if ae.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", fmt.Sprint(ae.RetryAfter))
	}
	var body errorBody
	body.Error.Code = ae.Code
	body.Error.Message = ae.Message
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(ae.Status)
		return
	}
	if werr := c.JSON(ae.Status, body); werr != nil {
		s.logger.Debug("write error response", "err", werr)
	}
}

func fromEchoError(he *echo.HTTPError) *apiError {
	msg := http.StatusText(he.Code)
	if m, ok := he.Message.(string); ok {
		msg = m
	}
	switch he.Code {
	case http.StatusNotFound:
		return errorf(he.Code, CodeNotFound, "no such route")
	case http.StatusMethodNotAllowed:
		return errorf(he.Code, CodeMethodNotAllowed, "method not allowed on this route")
	case http.StatusRequestEntityTooLarge:
		return errorf(he.Code, CodeBodyTooLarge, "request body is over the limit")
	}
	return errorf(he.Code, "http_"+fmt.Sprint(he.Code), "%s", msg)
}
