package httpapi

import (
	"encoding/json"
	"net/http"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/fsm"
)

// pendingMatchField is the field behind the seed's /pending-match route.
const pendingMatchField = "pendingMatch"

func (s *Server) fieldName(c echo.Context) (string, error) {
	name, ok := pathParam(c, "field")
	if !ok {
		return "", errorf(http.StatusBadRequest, CodeInvalidFieldName, "field name is not a valid escaped path segment")
	}
	if name == "" {
		return pendingMatchField, nil
	}
	if err := s.cfg.Limits.ValidFieldName(name); err != nil {
		return "", errorf(http.StatusBadRequest, CodeInvalidFieldName, "%v", err)
	}
	// A body's names are UTF-8 once decoded; a path's may not be, and would
	// render as U+FFFD, colliding with other names.
	if !utf8.ValidString(name) {
		return "", errorf(http.StatusBadRequest, CodeInvalidFieldName, "field name must be UTF-8")
	}
	return name, nil
}

// getFields returns every field as one object.
func (s *Server) getFields(c echo.Context) error {
	sess, err := s.load(c)
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, fieldsDocument(sess))
}

// getField returns one field's JSON value as the body.
func (s *Server) getField(c echo.Context) error {
	name, err := s.fieldName(c)
	if err != nil {
		return err
	}
	sess, err := s.load(c)
	if err != nil {
		return err
	}
	v, ok := sess.Field(name)
	if !ok {
		return errorf(http.StatusNotFound, CodeFieldNotFound, "field %q not set", name)
	}
	return c.JSONBlob(http.StatusOK, append(v[:len(v):len(v)], '\n'))
}

// putField sets one field to the body's JSON value; null removes it, as in a
// merge.
func (s *Server) putField(c echo.Context) error {
	name, err := s.fieldName(c)
	if err != nil {
		return err
	}
	value, err := s.readJSON(c)
	if err != nil {
		return err
	}
	cmd := &fsm.Command{Op: fsm.OpPutField, Field: name, Value: value}
	if string(value) == "null" {
		cmd = &fsm.Command{Op: fsm.OpMergeFields, Fields: map[string]json.RawMessage{name: nil}}
	}
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
	stored, ok := res.Session.Field(name)
	if !ok {
		stored = json.RawMessage("null")
	}
	return c.JSON(status, fieldResponse{Name: name, Value: stored, Version: res.Version})
}

type fieldResponse struct {
	Name    string          `json:"name"`
	Value   json.RawMessage `json:"value"`
	Version uint64          `json:"version"`
}

func (s *Server) deleteField(c echo.Context) error {
	name, err := s.fieldName(c)
	if err != nil {
		return err
	}
	cmd := &fsm.Command{Op: fsm.OpDeleteField, Field: name}
	if err := ifMatch(c, cmd); err != nil {
		return err
	}
	if _, err := s.apply(c, cmd); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
