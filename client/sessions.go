package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Message is one chat message. Seq and CreatedAt are set by sessiond.
type Message struct {
	Seq       uint64          `json:"seq,omitempty"`
	ID        string          `json:"id,omitempty"`
	Role      string          `json:"role"`
	Content   string          `json:"content"`
	CreatedAt int64           `json:"createdAt,omitempty"` // unix ms
	Meta      json.RawMessage `json:"meta,omitempty"`
}

// Session is a whole session: its fixed members, its messages and its
// fields (every other top-level member of the document).
type Session struct {
	ID             string
	CreatedAt      int64 // unix ms
	UpdatedAt      int64
	LastAccessedAt int64
	Version        uint64 // the raft index of the last write; the ETag
	ExpiresAt      int64  // unix ms; 0 when the session does not expire
	Messages       []Message
	Fields         map[string]json.RawMessage
	// Raw is the document as sessiond sent it, fields in its order.
	Raw json.RawMessage
}

// UnmarshalJSON reads a session document.
func (s *Session) UnmarshalJSON(b []byte) error {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	*s = Session{Fields: map[string]json.RawMessage{}, Raw: append(json.RawMessage(nil), b...)}
	for k, v := range doc {
		var err error
		switch k {
		case "id":
			err = json.Unmarshal(v, &s.ID)
		case "createdAt":
			err = json.Unmarshal(v, &s.CreatedAt)
		case "updatedAt":
			err = json.Unmarshal(v, &s.UpdatedAt)
		case "lastAccessedAt":
			err = json.Unmarshal(v, &s.LastAccessedAt)
		case "version":
			err = json.Unmarshal(v, &s.Version)
		case "expiresAt":
			err = json.Unmarshal(v, &s.ExpiresAt)
		case "messages":
			err = json.Unmarshal(v, &s.Messages)
		default:
			s.Fields[k] = v
		}
		if err != nil {
			return fmt.Errorf("session member %s: %w", k, err)
		}
	}
	return nil
}

// Consistency is how fresh a read must be.
type Consistency string

const (
	Linearizable Consistency = "linearizable" // every write acknowledged before the read (the default)
	LeaderRead   Consistency = "leader"       // the leader's state, without confirming it still leads
	Stale        Consistency = "stale"        // any replica's state, possibly behind
)

// ReadOption changes a read.
type ReadOption func(*readOpts)

type readOpts struct {
	consistency Consistency
}

// WithConsistency sets a read's consistency (Linearizable by default).
func WithConsistency(c Consistency) ReadOption { return func(o *readOpts) { o.consistency = c } }

// WriteOption changes a write.
type WriteOption func(*writeOpts)

type writeOpts struct {
	ifMatch string
	idemKey string
}

// IfVersion makes a write conditional: it is applied only while the
// session's version is v; otherwise it fails with ErrVersionMismatch and
// the *Error carries the current version. Conditional writes are the safe
// way to retry a PUT or PATCH after ErrOutcomeUnknown: re-read, decide,
// write with the version read.
func IfVersion(v uint64) WriteOption {
	return func(o *writeOpts) { o.ifMatch = `"` + strconv.FormatUint(v, 10) + `"` }
}

// IfAbsent makes a write apply only if the session does not exist yet.
func IfAbsent() WriteOption { return func(o *writeOpts) { o.ifMatch = `"0"` } }

// IdempotencyKey names an append: messages without an id get the ids
// KEY#0, KEY#1, …, so sending the same append again stores nothing twice.
// Without it, Append makes up a random key for messages without an id.
func IdempotencyKey(key string) WriteOption { return func(o *writeOpts) { o.idemKey = key } }

// SessionPath is the API path of session id.
func SessionPath(id string) string { return "/api/chat/session/" + url.PathEscape(id) }

func (c *Client) read(ctx context.Context, id, sub string, opts []ReadOption) (*response, error) {
	var o readOpts
	for _, f := range opts {
		f(&o)
	}
	path := SessionPath(id) + sub
	if o.consistency != "" {
		path += "?consistency=" + url.QueryEscape(string(o.consistency))
	}
	return c.do(ctx, &request{method: http.MethodGet, path: path, session: id, safety: readOnly})
}

func (c *Client) write(ctx context.Context, method, id, sub string, body []byte, s safety, opts []WriteOption) (*response, error) {
	var o writeOpts
	for _, f := range opts {
		f(&o)
	}
	return c.do(ctx, &request{method: method, path: SessionPath(id) + sub, body: body, session: id,
		safety: s, ifMatch: o.ifMatch, idemKey: o.idemKey})
}

// Get returns the whole session, or ErrSessionNotFound.
func (c *Client) Get(ctx context.Context, id string, opts ...ReadOption) (*Session, error) {
	resp, err := c.read(ctx, id, "", opts)
	if err != nil {
		return nil, err
	}
	var s Session
	return &s, decode(resp, &s)
}

// State is a session's fields and its version.
type State struct {
	Fields  map[string]json.RawMessage
	Version uint64
}

// State returns the session's fields (GET …/state), or ErrSessionNotFound.
func (c *Client) State(ctx context.Context, id string, opts ...ReadOption) (*State, error) {
	resp, err := c.read(ctx, id, "/state", opts)
	if err != nil {
		return nil, err
	}
	st := &State{}
	st.Version, _ = parseETag(resp.header.Get("ETag"))
	return st, decode(resp, &st.Fields)
}

// Field returns one field's value, or ErrSessionNotFound / ErrFieldNotFound.
func (c *Client) Field(ctx context.Context, id, name string, opts ...ReadOption) (json.RawMessage, error) {
	resp, err := c.read(ctx, id, "/state/"+url.PathEscape(name), opts)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(resp.body), nil
}

// AppendResult is what an append stored.
type AppendResult struct {
	Messages []Message `json:"messages"` // as stored, with seq; a repeated id returns the stored one
	Version  uint64    `json:"version"`
	// Created is true when at least one message was new (201), false when
	// every message was already stored (200, a repeat).
	Created bool `json:"-"`
}

// Append appends messages to session id, creating it. Appends are retried
// safely: messages without an id are named by an Idempotency-Key (given,
// or made up here), so every attempt carries the same ids and sessiond
// stores each message once.
func (c *Client) Append(ctx context.Context, id string, msgs []Message, opts ...WriteOption) (*AppendResult, error) {
	var o writeOpts
	for _, f := range opts {
		f(&o)
	}
	if o.idemKey == "" {
		for _, m := range msgs {
			if m.ID == "" {
				o.idemKey = randomKey()
				break
			}
		}
	}
	body, err := json.Marshal(struct {
		Messages []Message `json:"messages"`
	}{msgs})
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, &request{method: http.MethodPost, path: SessionPath(id) + "/messages", body: body,
		session: id, safety: idempotent, ifMatch: o.ifMatch, idemKey: o.idemKey})
	if err != nil {
		return nil, err
	}
	res := &AppendResult{Created: resp.status == http.StatusCreated}
	return res, decode(resp, res)
}

// randomKey is an Idempotency-Key no other append uses.
func randomKey() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Update merges fields (a JSON object: a map or a struct) into the
// session's top-level fields, creating the session; a null value deletes a
// field. It is PUT: retried only when sessiond said it was not applied.
// After ErrOutcomeUnknown re-read the session, or use IfVersion.
func (c *Client) Update(ctx context.Context, id string, fields any, opts ...WriteOption) (*Session, error) {
	return c.fieldsWrite(ctx, http.MethodPut, id, fields, opts)
}

// Patch applies an RFC 7396 JSON merge patch to the session's fields.
// Retried as Update is.
func (c *Client) Patch(ctx context.Context, id string, patch any, opts ...WriteOption) (*Session, error) {
	return c.fieldsWrite(ctx, http.MethodPatch, id, patch, opts)
}

func (c *Client) fieldsWrite(ctx context.Context, method, id string, doc any, opts []WriteOption) (*Session, error) {
	body, err := marshal(doc)
	if err != nil {
		return nil, err
	}
	resp, err := c.write(ctx, method, id, "", body, unsafe, opts)
	if err != nil {
		return nil, err
	}
	var s Session
	return &s, decode(resp, &s)
}

// SetField sets one field to value and returns the session's new version.
func (c *Client) SetField(ctx context.Context, id, name string, value any, opts ...WriteOption) (uint64, error) {
	body, err := marshal(value)
	if err != nil {
		return 0, err
	}
	resp, err := c.write(ctx, http.MethodPut, id, "/state/"+url.PathEscape(name), body, unsafe, opts)
	if err != nil {
		return 0, err
	}
	var fr struct {
		Version uint64 `json:"version"`
	}
	return fr.Version, decode(resp, &fr)
}

// DeleteField deletes one field; ErrFieldNotFound when it has none.
func (c *Client) DeleteField(ctx context.Context, id, name string, opts ...WriteOption) error {
	_, err := c.write(ctx, http.MethodDelete, id, "/state/"+url.PathEscape(name), nil, unsafe, opts)
	return err
}

// Delete deletes the session; ErrSessionNotFound when there is none. It is
// retried after ErrOutcomeUnknown, so a delete that was applied by an
// earlier attempt may report ErrSessionNotFound.
func (c *Client) Delete(ctx context.Context, id string, opts ...WriteOption) error {
	_, err := c.write(ctx, http.MethodDelete, id, "", nil, idempotent, opts)
	return err
}

// MessagesQuery pages through messages: those after seq After (0: from the
// first), at most Limit (0: the server's default, 100). Wait > 0 blocks
// until a message after After exists or Wait (at most 60s) passes.
type MessagesQuery struct {
	After uint64
	Limit int
	Wait  time.Duration
}

// MessagePage is one page of messages.
type MessagePage struct {
	Messages  []Message `json:"messages"`
	Version   uint64    `json:"version"`
	Total     int       `json:"total"`
	NextAfter uint64    `json:"nextAfter,omitempty"` // pass as After for the next page
	HasMore   bool      `json:"hasMore"`
}

// Messages returns a page of the session's messages.
func (c *Client) Messages(ctx context.Context, id string, q MessagesQuery, opts ...ReadOption) (*MessagePage, error) {
	var o readOpts
	for _, f := range opts {
		f(&o)
	}
	v := url.Values{}
	if q.After > 0 {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Wait > 0 {
		v.Set("wait", q.Wait.String())
	}
	if o.consistency != "" {
		v.Set("consistency", string(o.consistency))
	}
	path := SessionPath(id) + "/messages"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	resp, err := c.do(ctx, &request{method: http.MethodGet, path: path, session: id, safety: readOnly, wait: q.Wait})
	if err != nil {
		return nil, err
	}
	var p MessagePage
	return &p, decode(resp, &p)
}

// decode reads a JSON answer into v.
func decode(resp *response, v any) error {
	if err := json.Unmarshal(resp.body, v); err != nil {
		return &Error{Status: resp.status, Code: CodeUnexpectedResponse, Endpoint: resp.endpoint,
			Message: "cannot read the answer: " + err.Error()}
	}
	return nil
}

// marshal encodes a request body; raw JSON is sent as it is.
func marshal(v any) ([]byte, error) {
	switch d := v.(type) {
	case json.RawMessage:
		return d, nil
	case []byte:
		return d, nil
	}
	return json.Marshal(v)
}
