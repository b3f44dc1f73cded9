package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Code is a sessiond error code, the stable part of every error answer
// {"error":{"code":"…","message":"…"}}: programs switch on it, people read
// the message.
type Code string

// Every code sessiond answers with; README.md's error table says when.
const (
	CodeInvalidSessionID    Code = "invalid_session_id"
	CodeInvalidJSON         Code = "invalid_json"
	CodeInvalidMessage      Code = "invalid_message"
	CodeTooManyMessages     Code = "too_many_messages"
	CodeInvalidFields       Code = "invalid_fields"
	CodeInvalidFieldName    Code = "invalid_field_name"
	CodeMessagesNotAllowed  Code = "messages_not_allowed"
	CodeInvalidConsistency  Code = "invalid_consistency"
	CodeInvalidLimit        Code = "invalid_limit"
	CodeInvalidAfter        Code = "invalid_after"
	CodeInvalidPrefix       Code = "invalid_prefix"
	CodeInvalidIfMatch      Code = "invalid_if_match"
	CodeInvalidPosition     Code = "invalid_position"
	CodeInvalidWait         Code = "invalid_wait"
	CodeInvalidExpiry       Code = "invalid_expiry"
	CodeInvalidAlarm        Code = "invalid_alarm"
	CodeInvalidShard        Code = "invalid_shard"
	CodeMalformedRequest    Code = "malformed_request"
	CodeUnsupportedTransfer Code = "unsupported_transfer_encoding"
	CodeSessionNotFound     Code = "session_not_found"
	CodeFieldNotFound       Code = "field_not_found"
	CodeAlarmNotFound       Code = "alarm_not_found"
	CodeNodeNotFound        Code = "node_not_found"
	CodeNotFound            Code = "not_found"
	CodeMethodNotAllowed    Code = "method_not_allowed"
	CodeIDConflict          Code = "id_conflict"
	CodeNodeNotAlive        Code = "node_not_alive"
	CodeNodeUnreachable     Code = "node_unreachable"
	CodeInvalidBackup       Code = "invalid_backup"
	CodeShardCountMismatch  Code = "shard_count_mismatch"
	CodeClusterNotEmpty     Code = "cluster_not_empty"
	CodeNoOtherReplica      Code = "no_other_replica"
	CodeTransferFailed      Code = "transfer_failed"
	CodeVersionMismatch     Code = "version_mismatch"
	CodeBodyTooLarge        Code = "body_too_large"
	CodeContentTooLarge     Code = "content_too_large"
	CodeSessionTooLarge     Code = "session_too_large"
	CodeUnauthorized        Code = "unauthorized"
	CodeForbidden           Code = "forbidden"
	CodeRateLimited         Code = "rate_limited"
	CodeHeadersTooLarge     Code = "headers_too_large"
	CodeInsufficientStorage Code = "insufficient_storage"
	CodeNoLeader            Code = "no_leader"
	CodeNotReady            Code = "not_ready"
	CodeOverloaded          Code = "overloaded"
	CodeShuttingDown        Code = "shutting_down"
	CodeShardUnavailable    Code = "shard_unavailable"
	CodeTimeout             Code = "timeout"
	CodeNotCaughtUp         Code = "not_caught_up"
	CodeOutcomeUnknown      Code = "outcome_unknown"
	CodeInternal            Code = "internal"
	CodeUnreachable         Code = "unreachable"         // no endpoint answered; never sent by a node
	CodeUnexpectedResponse  Code = "unexpected_response" // a 2xx answer the client cannot read
)

const (
	codeHTTPPrefix    = "http_" // an answer without the error model: http_502, …
	maxMessageInError = 200
)

// Error is an error answered by sessiond, or one the client reports in the
// same terms: CodeUnreachable when no endpoint answered, CodeOutcomeUnknown
// when a write that is not safe to repeat failed after it was sent.
//
// Compare with errors.Is against the Err… values, which match on the code:
//
//	if errors.Is(err, client.ErrVersionMismatch) { … }
type Error struct {
	Status     int           // HTTP status; 0 when no node answered
	Code       Code          // the stable error code
	Message    string        // for people; may change between releases
	Endpoint   string        // base URL of the node that answered or failed
	RetryAfter time.Duration // the node's Retry-After, 0 without one
	// Version is the session's current version on version_mismatch (the
	// ETag the 412 carries), else 0.
	Version uint64
	// Err is the transport error behind CodeUnreachable or a client-side
	// CodeOutcomeUnknown.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", e.Code, e.Message)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d from %s)", e.Status, e.Endpoint)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error with the same code, so the Err… values work
// with errors.Is.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Retryable reports whether sessiond said the request was not applied and
// may be sent again as it is: 503 with any code but outcome_unknown, and
// 429 rate_limited.
func (e *Error) Retryable() bool {
	switch e.Code {
	case CodeNoLeader, CodeNotReady, CodeOverloaded, CodeShuttingDown, CodeShardUnavailable,
		CodeTimeout, CodeNotCaughtUp, CodeRateLimited:
		return true
	}
	return false
}

// Values to compare errors with, one per code (errors.Is matches the code).
var (
	ErrInvalidSessionID    = &Error{Code: CodeInvalidSessionID}
	ErrInvalidJSON         = &Error{Code: CodeInvalidJSON}
	ErrInvalidMessage      = &Error{Code: CodeInvalidMessage}
	ErrTooManyMessages     = &Error{Code: CodeTooManyMessages}
	ErrInvalidFields       = &Error{Code: CodeInvalidFields}
	ErrInvalidFieldName    = &Error{Code: CodeInvalidFieldName}
	ErrMessagesNotAllowed  = &Error{Code: CodeMessagesNotAllowed}
	ErrInvalidConsistency  = &Error{Code: CodeInvalidConsistency}
	ErrInvalidLimit        = &Error{Code: CodeInvalidLimit}
	ErrInvalidAfter        = &Error{Code: CodeInvalidAfter}
	ErrInvalidPrefix       = &Error{Code: CodeInvalidPrefix}
	ErrInvalidIfMatch      = &Error{Code: CodeInvalidIfMatch}
	ErrInvalidPosition     = &Error{Code: CodeInvalidPosition}
	ErrInvalidWait         = &Error{Code: CodeInvalidWait}
	ErrInvalidExpiry       = &Error{Code: CodeInvalidExpiry}
	ErrInvalidAlarm        = &Error{Code: CodeInvalidAlarm}
	ErrInvalidShard        = &Error{Code: CodeInvalidShard}
	ErrMalformedRequest    = &Error{Code: CodeMalformedRequest}
	ErrUnsupportedTransfer = &Error{Code: CodeUnsupportedTransfer}
	ErrSessionNotFound     = &Error{Code: CodeSessionNotFound}
	ErrFieldNotFound       = &Error{Code: CodeFieldNotFound}
	ErrAlarmNotFound       = &Error{Code: CodeAlarmNotFound}
	ErrNodeNotFound        = &Error{Code: CodeNodeNotFound}
	ErrNotFound            = &Error{Code: CodeNotFound}
	ErrMethodNotAllowed    = &Error{Code: CodeMethodNotAllowed}
	ErrIDConflict          = &Error{Code: CodeIDConflict}
	ErrNodeNotAlive        = &Error{Code: CodeNodeNotAlive}
	ErrNodeUnreachable     = &Error{Code: CodeNodeUnreachable}
	ErrInvalidBackup       = &Error{Code: CodeInvalidBackup}
	ErrShardCountMismatch  = &Error{Code: CodeShardCountMismatch}
	ErrClusterNotEmpty     = &Error{Code: CodeClusterNotEmpty}
	ErrNoOtherReplica      = &Error{Code: CodeNoOtherReplica}
	ErrTransferFailed      = &Error{Code: CodeTransferFailed}
	ErrVersionMismatch     = &Error{Code: CodeVersionMismatch}
	ErrBodyTooLarge        = &Error{Code: CodeBodyTooLarge}
	ErrContentTooLarge     = &Error{Code: CodeContentTooLarge}
	ErrSessionTooLarge     = &Error{Code: CodeSessionTooLarge}
	ErrUnauthorized        = &Error{Code: CodeUnauthorized}
	ErrForbidden           = &Error{Code: CodeForbidden}
	ErrRateLimited         = &Error{Code: CodeRateLimited}
	ErrHeadersTooLarge     = &Error{Code: CodeHeadersTooLarge}
	ErrInsufficientStorage = &Error{Code: CodeInsufficientStorage}
	ErrNoLeader            = &Error{Code: CodeNoLeader}
	ErrNotReady            = &Error{Code: CodeNotReady}
	ErrOverloaded          = &Error{Code: CodeOverloaded}
	ErrShuttingDown        = &Error{Code: CodeShuttingDown}
	ErrShardUnavailable    = &Error{Code: CodeShardUnavailable}
	ErrTimeout             = &Error{Code: CodeTimeout}
	ErrNotCaughtUp         = &Error{Code: CodeNotCaughtUp}
	ErrOutcomeUnknown      = &Error{Code: CodeOutcomeUnknown}
	ErrInternal            = &Error{Code: CodeInternal}
	ErrUnreachable         = &Error{Code: CodeUnreachable}
)

// ErrorBody is the JSON error model every sessiond error answer carries.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// DecodeError turns a non-2xx answer into an *Error. A body without the
// error model (a proxy's HTML page) still yields a readable error, with the
// code http_STATUS.
func DecodeError(status int, header http.Header, body []byte, endpoint string) *Error {
	e := &Error{Status: status, Endpoint: endpoint}
	var eb ErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		e.Code, e.Message = Code(eb.Error.Code), eb.Error.Message
	} else {
		e.Code = Code(fmt.Sprintf("%s%d", codeHTTPPrefix, status))
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > maxMessageInError {
			e.Message = e.Message[:maxMessageInError] + "…"
		}
		if e.Message == "" {
			e.Message = http.StatusText(status)
		}
	}
	if header != nil {
		if s, err := parseSeconds(header.Get("Retry-After")); err == nil {
			e.RetryAfter = s
		}
		if e.Code == CodeVersionMismatch {
			e.Version, _ = parseETag(header.Get("ETag"))
		}
	}
	return e
}

func parseSeconds(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 0 {
		return 0, errors.New("not seconds")
	}
	return time.Duration(n) * time.Second, nil
}
