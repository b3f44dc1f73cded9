package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sessiond/sessiond/client"
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
	left := *count
	return c.Watch(ctx, pos[0], client.WatchOptions{After: *after}, func(ev client.Event) error {
		a.printEvent(ev)
		if left > 0 {
			if left--; left == 0 {
				return client.ErrStopWatch
			}
		}
		return nil
	})
}

func (a *app) printEvent(ev client.Event) {
	if a.output == "json" {
		line, _ := json.Marshal(struct {
			ID    string          `json:"id"`
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}{ev.ID, ev.Type, json.RawMessage(ev.Data)})
		fmt.Fprintln(a.stdout, string(line))
		return
	}
	fmt.Fprintf(a.stdout, "%-8s %-8s %s\n", ev.ID, ev.Type, ev.Data)
}
