package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/fsm"
)

// CodeInvalidAlarm is an alarm request that names no valid alarm or time.
const CodeInvalidAlarm = "invalid_alarm"

// CodeAlarmNotFound is a delete of an alarm the session does not hold.
const CodeAlarmNotFound = "alarm_not_found"

type alarmRequest struct {
	At      int64           `json:"at"` // unix ms
	In      string          `json:"in"` // a duration from now
	Payload json.RawMessage `json:"payload"`
}

// putAlarm sets alarm :name of the session: {"at": UNIX_MS} or {"in":
// "10m"}, with an optional JSON payload. Setting an existing name replaces
// it. The session must exist.
func (s *Server) putAlarm(c echo.Context) error {
	name, ok := pathParam(c, "name")
	if !ok {
		return errorf(http.StatusBadRequest, CodeInvalidAlarm, "alarm name is not a valid escaped path segment")
	}
	if err := fsm.ValidAlarmName(name); err != nil {
		return errorf(http.StatusBadRequest, CodeInvalidAlarm, "%v", err)
	}
	body, err := s.readJSON(c)
	if err != nil {
		return err
	}
	var req alarmRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return errorf(http.StatusBadRequest, CodeInvalidAlarm, `an alarm is {"at":UNIX_MS} or {"in":"10m"}, with an optional "payload": %v`, err)
	}
	cmd := &fsm.Command{Op: fsm.OpSetAlarm, Name: name, Value: req.Payload}
	switch {
	case req.In != "" && req.At != 0:
		return errorf(http.StatusBadRequest, CodeInvalidAlarm, "give at or in, not both")
	case req.In != "":
		d, err := time.ParseDuration(req.In)
		if err != nil || d < 0 {
			return errorf(http.StatusBadRequest, CodeInvalidAlarm, "in must be a duration such as 10m")
		}
		cmd.Due = time.Now().Add(d).UnixMilli()
	case req.At > 0:
		cmd.Due = req.At
	default:
		return errorf(http.StatusBadRequest, CodeInvalidAlarm, "an alarm needs at (unix ms) or in (a duration)")
	}
	if string(req.Payload) == "null" {
		cmd.Value = nil
	}
	if err := ifMatch(c, cmd); err != nil {
		return err
	}
	res, err := s.apply(c, cmd)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, fsm.Alarm{Name: name, At: cmd.Due, Payload: cmd.Value, Set: res.Version})
}

// deleteAlarm removes a pending alarm.
func (s *Server) deleteAlarm(c echo.Context) error {
	name, ok := pathParam(c, "name")
	if !ok {
		return errorf(http.StatusBadRequest, CodeInvalidAlarm, "alarm name is not a valid escaped path segment")
	}
	if err := fsm.ValidAlarmName(name); err != nil {
		return errorf(http.StatusBadRequest, CodeInvalidAlarm, "%v", err)
	}
	cmd := &fsm.Command{Op: fsm.OpDeleteAlarm, Name: name}
	if err := ifMatch(c, cmd); err != nil {
		return err
	}
	if _, err := s.apply(c, cmd); err != nil {
		if ae, ok := err.(*apiError); ok && ae.Code == CodeFieldNotFound {
			return errorf(http.StatusNotFound, CodeAlarmNotFound, "session has no alarm %q", name)
		}
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// listAlarms shows the session's pending alarms (by time) and its most
// recent fires.
func (s *Server) listAlarms(c echo.Context) error {
	sess, err := s.load(c)
	if err != nil {
		return err
	}
	fired := sess.FiredAlarms()
	if fired == nil {
		fired = []fsm.FiredAlarm{}
	}
	return c.JSON(http.StatusOK, map[string]any{"alarms": sess.Alarms(), "fired": fired, "version": sess.Version})
}
