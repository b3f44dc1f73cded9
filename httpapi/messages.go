package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/fsm"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// appendMessages appends one message ({role, content, id?, meta?}) or a batch
// ({messages:[…]}). A message's id — given, derived from Idempotency-Key, or
// generated here — makes a retried append return the stored message instead
// of storing it twice.
func (s *Server) appendMessages(c echo.Context) error {
	members, _, err := s.readObject(c, CodeInvalidMessage)
	if err != nil {
		return err
	}
	var raws []map[string]json.RawMessage
	if list, ok := members["messages"]; ok {
		if err := json.Unmarshal(list, &raws); err != nil || !bytes.HasPrefix(bytes.TrimSpace(list), []byte("[")) {
			return errorf(http.StatusBadRequest, CodeInvalidMessage, "messages must be an array of message objects")
		}
		if len(raws) == 0 {
			return errorf(http.StatusBadRequest, CodeInvalidMessage, "messages must not be empty")
		}
		if len(raws) > s.cfg.MaxBatch {
			return errorf(http.StatusBadRequest, CodeTooManyMessages, "at most %d messages per request", s.cfg.MaxBatch)
		}
	} else {
		raws = []map[string]json.RawMessage{members}
	}
	key := c.Request().Header.Get("Idempotency-Key")
	if len(key) > s.cfg.Limits.MaxMessageIDBytes-8 {
		return errorf(http.StatusBadRequest, CodeInvalidMessage, "Idempotency-Key is longer than %d bytes", s.cfg.Limits.MaxMessageIDBytes-8)
	}
	msgs := make([]fsm.NewMessage, len(raws))
	for i, raw := range raws {
		if raw == nil {
			return errorf(http.StatusBadRequest, CodeInvalidMessage, "message %d must be an object", i)
		}
		m, err := s.parseMessage(raw, i)
		if err != nil {
			return err
		}
		if m.ID == "" {
			m.ID = messageID(key, i, len(raws))
		}
		msgs[i] = m
	}
	cmd := &fsm.Command{Op: fsm.OpAppendMessages, Messages: msgs}
	if err := ifMatch(c, cmd); err != nil {
		return err
	}
	res, err := s.apply(c, cmd)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if res.Changed {
		status = http.StatusCreated
	}
	return c.JSONBlob(status, messagesDocument(res.Messages, res.Version, nil))
}

// parseMessage checks one message object's members and their JSON types.
func (s *Server) parseMessage(raw map[string]json.RawMessage, i int) (fsm.NewMessage, error) {
	var m fsm.NewMessage
	str := func(name string, required bool) (string, error) {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			if required {
				return "", errorf(http.StatusBadRequest, CodeInvalidMessage, "message %d: %s is required", i, name)
			}
			return "", nil
		}
		out, ok := decodeJSONString(v)
		if !ok {
			return "", errorf(http.StatusBadRequest, CodeInvalidMessage, "message %d: %s must be a string", i, name)
		}
		return out, nil
	}
	var err error
	if m.Role, err = str("role", true); err != nil {
		return m, err
	}
	if m.Content, err = str("content", true); err != nil {
		return m, err
	}
	if m.ID, err = str("id", false); err != nil {
		return m, err
	}
	if meta, ok := raw["meta"]; ok && string(meta) != "null" {
		var buf bytes.Buffer
		_ = json.Compact(&buf, meta) // already validated as part of the body
		m.Meta = buf.Bytes()
	}
	l := s.cfg.Limits
	switch {
	case m.Role == "":
		return m, errorf(http.StatusBadRequest, CodeInvalidMessage, "message %d: role must not be empty", i)
	case len(m.Role) > l.MaxRoleBytes:
		return m, errorf(http.StatusBadRequest, CodeInvalidMessage, "message %d: role is longer than %d bytes", i, l.MaxRoleBytes)
	case len(m.Content) > l.MaxContentBytes:
		return m, errorf(http.StatusRequestEntityTooLarge, CodeContentTooLarge,
			"message %d: content is %d bytes, over the limit of %d", i, len(m.Content), l.MaxContentBytes)
	case len(m.Meta) > l.MaxMetaBytes:
		return m, errorf(http.StatusRequestEntityTooLarge, CodeContentTooLarge, "message %d: meta is over the limit of %d bytes", i, l.MaxMetaBytes)
	case len(m.ID) > l.MaxMessageIDBytes:
		return m, errorf(http.StatusBadRequest, CodeInvalidMessage, "message %d: id is longer than %d bytes", i, l.MaxMessageIDBytes)
	}
	if _, ok := raw["id"]; ok && m.ID == "" {
		return m, errorf(http.StatusBadRequest, CodeInvalidMessage, "message %d: id must not be empty", i)
	}
	return m, nil
}

// messageID derives a message's id from the request's Idempotency-Key (one
// per message of a batch), or generates a random one.
func messageID(key string, i, n int) string {
	switch {
	case key != "" && n == 1:
		return key
	case key != "":
		return key + "#" + strconv.Itoa(i)
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// listMessages returns the page of messages with seq > after.
func (s *Server) listMessages(c echo.Context) error {
	after, err := queryUint(c, "after", 0, CodeInvalidAfter)
	if err != nil {
		return err
	}
	limit, err := queryUint(c, "limit", defaultPageSize, CodeInvalidLimit)
	if err != nil {
		return err
	}
	if limit < 1 || limit > maxPageSize {
		return errorf(http.StatusBadRequest, CodeInvalidLimit, "limit must be between 1 and %d", maxPageSize)
	}
	wait, err := waitParam(c)
	if err != nil {
		return err
	}
	var sess *fsm.Session
	if wait > 0 {
		sess, err = s.waitForMessages(c, after, wait)
	} else {
		sess, err = s.load(c)
	}
	if err != nil {
		return err
	}
	page := sess.MessagesAfter(after, int(limit))
	if page == nil {
		page = []fsm.Message{}
	}
	info := pageInfo{Total: sess.MessageCount()}
	if len(page) > 0 {
		info.NextAfter = page[len(page)-1].Seq
		info.HasMore = info.NextAfter < uint64(sess.MessageCount())
	}
	return c.JSONBlob(http.StatusOK, messagesDocument(page, sess.Version, &info))
}

// pageInfo is what a page of messages says about the rest: the session's
// message count, the seq to ask for the next page after (0 for an empty
// page, when it is left out) and whether there are more.
type pageInfo struct {
	Total     int
	NextAfter uint64
	HasMore   bool
}

// MaxWait bounds ?wait= of a blocking read.
const MaxWait = 60 * time.Second

// CodeInvalidWait is a ?wait= that is no duration within MaxWait.
const CodeInvalidWait = "invalid_wait"

func waitParam(c echo.Context) (time.Duration, error) {
	v := c.QueryParam("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > MaxWait {
		return 0, errorf(http.StatusBadRequest, CodeInvalidWait, "wait must be a duration such as 30s, at most %v", MaxWait)
	}
	return d, nil
}

// waitForMessages is a blocking read (as Consul's blocking queries): it
// answers as soon as the session holds a message after seq after, or with
// what it holds when wait runs out. It first reads at the requested
// consistency; later looks come from the local replica, which by then has
// applied more. A session that does not exist yet is waited for too.
func (s *Server) waitForMessages(c echo.Context, after uint64, wait time.Duration) (*fsm.Session, error) {
	id, sh := scope(c)
	level, err := consistency(c)
	if err != nil {
		return nil, err
	}
	release, err := s.streams.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	ctx := c.Request().Context()
	state, err := s.boundedRead(ctx, sh, level)
	if err != nil {
		return nil, s.forwardIfMoved(c, sh, err)
	}
	changed, cancel := state.Watch(id)
	defer cancel()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		sess, ok := state.Get(id)
		if ok && uint64(sess.MessageCount()) > after {
			setETag(c, sess.Version)
			return sess, nil
		}
		select {
		case <-changed:
			continue
		case <-timer.C:
		case <-s.streams.closed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if !ok {
			return nil, errorf(http.StatusNotFound, CodeSessionNotFound, "session %q not found", id)
		}
		setETag(c, sess.Version)
		return sess, nil
	}
}

// waitable lifts the server's timeouts for a blocking read, to its longest
// wait plus time to answer, here and on a node that forwards it.
func waitable(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.QueryParam("wait") != "" {
			rc := http.NewResponseController(c.Response().Writer)
			_ = rc.SetReadDeadline(time.Time{})
			_ = rc.SetWriteDeadline(time.Now().Add(MaxWait + streamWriteTimeout))
		}
		return next(c)
	}
}

func queryUint(c echo.Context, name string, def uint64, code string) (uint64, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, code, "%s must be a non-negative integer", name)
	}
	return n, nil
}
