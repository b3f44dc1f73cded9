package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/fsm"
)

// CodeInvalidExpiry is an expiry body that is neither a ttl nor a time.
const CodeInvalidExpiry = "invalid_expiry"

// expiresAt is when sess will be removed unless written again: its own
// expiry, or the node's --session-ttl after its last write; 0 for never.
func (s *Server) expiresAt(sess *fsm.Session) int64 {
	if at, own := sess.ExpiresAt(); own {
		return at
	}
	if s.cfg.SessionTTL > 0 {
		return sess.UpdatedAt + s.cfg.SessionTTL.Milliseconds()
	}
	return 0
}

type expiryRequest struct {
	TTL string `json:"ttl"` // a Go duration, counted from the last write
	At  int64  `json:"at"`  // unix ms
}

type expiryResponse struct {
	ID        string `json:"id"`
	TTL       string `json:"ttl,omitempty"`
	ExpiresAt int64  `json:"expiresAt,omitempty"`
	Version   uint64 `json:"version"`
}

// putExpiry gives a session an expiry of its own: {"ttl":"24h"} after its
// last write, {"at": unix ms} at a time, or {} to clear it and fall back to
// the node's --session-ttl. The session must exist.
func (s *Server) putExpiry(c echo.Context) error {
	body, err := s.readJSON(c)
	if err != nil {
		return err
	}
	var req expiryRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return errorf(http.StatusBadRequest, CodeInvalidExpiry, `expiry must be {"ttl":"24h"}, {"at":UNIX_MS} or {}: %v`, err)
	}
	cmd := &fsm.Command{Op: fsm.OpSetExpiry}
	switch {
	case req.TTL != "" && req.At != 0:
		return errorf(http.StatusBadRequest, CodeInvalidExpiry, "give a ttl or a time (at), not both")
	case req.TTL != "":
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d < time.Second {
			return errorf(http.StatusBadRequest, CodeInvalidExpiry, "ttl must be a duration of at least 1s, such as 30m or 24h")
		}
		cmd.TTL = d.Milliseconds()
	case req.At < 0:
		return errorf(http.StatusBadRequest, CodeInvalidExpiry, "at must be a time in unix milliseconds")
	default:
		cmd.Expires = req.At
	}
	return s.setExpiry(c, cmd)
}

// deleteExpiry clears a session's own expiry.
func (s *Server) deleteExpiry(c echo.Context) error {
	return s.setExpiry(c, &fsm.Command{Op: fsm.OpSetExpiry})
}

func (s *Server) setExpiry(c echo.Context, cmd *fsm.Command) error {
	if err := ifMatch(c, cmd); err != nil {
		return err
	}
	res, err := s.apply(c, cmd)
	if err != nil {
		return err
	}
	resp := expiryResponse{ID: cmd.Session, Version: res.Version}
	switch {
	case cmd.TTL > 0:
		resp.TTL = fmt.Sprint(time.Duration(cmd.TTL) * time.Millisecond)
		resp.ExpiresAt = res.Session.UpdatedAt + cmd.TTL
	case cmd.Expires > 0:
		resp.ExpiresAt = cmd.Expires
	case s.cfg.SessionTTL > 0:
		resp.ExpiresAt = res.Session.UpdatedAt + s.cfg.SessionTTL.Milliseconds()
	}
	return c.JSON(http.StatusOK, resp)
}
