package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/internal/sse"
)

// cmdWatch prints a session's change stream until interrupted (or --count
// events). Like a browser's EventSource it reconnects when a stream ends
// (a node drains, dies or loses its replica), to the next --addr, with the
// last event id it saw, so no change is missed or printed twice.
func cmdWatch(a *app, fs *flag.FlagSet, args []string) error {
	after := fs.String("after", "", "start after this event id (a session version) instead of with a snapshot")
	count := fs.Int("count", 0, "stop after this many events (0: until interrupted)")
	pos, c, err := a.setup(fs, args, 1, 1, "ID")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	w := &watcher{a: a, c: c, path: sessionPath(pos[0]) + "/events", last: *after, left: *count}
	return w.run(ctx)
}

type watcher struct {
	a    *app
	c    *client
	path string
	last string // the last event id printed
	left int    // events still to print; 0 means no limit
}

// errCountReached ends a watch that printed --count events.
var errCountReached = errors.New("count reached")

func (w *watcher) run(ctx context.Context) error {
	var lastErr error
	for failures := 0; ; {
		for _, addr := range w.c.addrs {
			err := w.follow(ctx, addr)
			switch {
			case errors.Is(err, errCountReached):
				return nil
			case ctx.Err() != nil:
				return nil
			case err == nil || errors.Is(err, io.EOF):
				failures = 0 // the stream ended cleanly: reconnect
			default:
				var ae *apiError
				if errors.As(err, &ae) && ae.Status < 500 {
					return err // the request itself is wrong
				}
				lastErr = err
				failures++
			}
			if failures >= 3*len(w.c.addrs) {
				return fmt.Errorf("no node serves the stream: %w", lastErr)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(min(time.Duration(failures)*200*time.Millisecond, 2*time.Second)):
			}
		}
	}
}

// follow prints one stream from addr until it ends.
func (w *watcher) follow(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr+w.path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if w.last != "" {
		req.Header.Set("Last-Event-ID", w.last)
	}
	resp, err := w.c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return decodeError(resp.StatusCode, body, addr)
	}
	rd := sse.NewReader(resp.Body)
	for {
		ev, err := rd.Next()
		if err != nil {
			return err
		}
		if ev.Event == "resume" {
			continue // the server ends this stream; the next one resumes
		}
		w.print(ev)
		if ev.ID != "" {
			w.last = ev.ID
		}
		if w.left > 0 {
			if w.left--; w.left == 0 {
				return errCountReached
			}
		}
	}
}

func (w *watcher) print(ev sse.Event) {
	if w.a.output == "json" {
		line, _ := json.Marshal(struct {
			ID    string          `json:"id"`
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}{ev.ID, ev.Event, json.RawMessage(ev.Data)})
		fmt.Fprintln(w.a.stdout, string(line))
		return
	}
	fmt.Fprintf(w.a.stdout, "%-8s %-8s %s\n", ev.ID, ev.Event, ev.Data)
}
