package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sessiond/sessiond/internal/sse"
)

// Event is one change of a session's stream: snapshot, message, fields,
// deleted or alarm. Data is the event's JSON document.
type Event struct {
	ID   string // the position after the event; resume after it
	Type string
	Data []byte
}

// WatchOptions start a watch: after the event id After ("" starts with a
// snapshot of the whole session).
type WatchOptions struct {
	After string
}

// ErrStopWatch, returned by a Watch callback, ends the watch without error.
var ErrStopWatch = errors.New("stop watching")

// Watch follows session id's change stream, calling fn with each event in
// order, until ctx ends (it then returns nil), fn returns an error, or no
// endpoint serves the stream three times over. Like a browser's
// EventSource it reconnects when a stream ends (a node drains, dies or
// loses its replica) to the next endpoint with the last event id, so fn
// sees every change once. fn runs on the caller's goroutine.
func (c *Client) Watch(ctx context.Context, id string, opts WatchOptions, fn func(Event) error) error {
	last := opts.After
	var lastErr error
	for failures := 0; ; {
		for _, base := range c.endpoints {
			err := c.follow(ctx, base, id, &last, fn)
			switch {
			case errors.Is(err, ErrStopWatch), ctx.Err() != nil:
				return nil
			case err == nil || errors.Is(err, io.EOF):
				failures = 0 // the stream ended cleanly: reconnect
			default:
				var e *Error
				if errors.As(err, &e) && e.Status > 0 && e.Status < 500 {
					return err // the request itself is wrong
				}
				if !errors.As(err, &e) {
					return err // fn's own error
				}
				lastErr = err
				failures++
			}
			if failures >= 3*len(c.endpoints) {
				return fmt.Errorf("no node serves the stream: %w", lastErr)
			}
			t := time.NewTimer(min(time.Duration(failures)*200*time.Millisecond, 2*time.Second))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
	}
}

// follow reads one stream from base until it ends.
func (c *Client) follow(ctx context.Context, base, id string, last *string, fn func(Event) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+SessionPath(id)+"/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	if *last != "" {
		req.Header.Set("Last-Event-ID", *last)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &Error{Code: CodeUnreachable, Endpoint: base, Message: netReason(err, c.timeout), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return DecodeError(resp.StatusCode, resp.Header, body, base)
	}
	rd := sse.NewReader(resp.Body)
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return &Error{Code: CodeUnreachable, Endpoint: base, Message: "stream broke: " + err.Error(), Err: err}
		}
		if ev.Event == "resume" {
			continue // the node ends this stream; the next one resumes
		}
		if err := fn(Event{ID: ev.ID, Type: ev.Event, Data: []byte(ev.Data)}); err != nil {
			return err
		}
		if ev.ID != "" {
			*last = ev.ID
		}
	}
}
