package client_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/testnode"
)

func TestWatchResumesAfterAPositionAndOutlivesTheNodeItWatchedThrough(t *testing.T) {
	nodes := testnode.Start(t, testnode.Options{Nodes: 3, Shards: 1})
	c := newClient(t, client.Config{Endpoints: []string{nodes[0].URL, nodes[1].URL, nodes[2].URL}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := c.Append(ctx, "w", []client.Message{{ID: "m1", Role: "user", Content: "one"}})
	if err != nil {
		t.Fatal(err)
	}

	go func() {
		time.Sleep(200 * time.Millisecond)
		if _, err := c.Append(ctx, "w", []client.Message{{ID: "m2", Role: "user", Content: "two"}}); err != nil {
			t.Error(err)
		}
	}()
	var got []string
	err = c.Watch(ctx, "w", client.WatchOptions{After: strconv.FormatUint(first.Version, 10)}, func(ev client.Event) error {
		var m client.Message
		if ev.Type != "message" || json.Unmarshal(ev.Data, &m) != nil {
			t.Errorf("event %s %s, want only messages after the position", ev.Type, ev.Data)
			return client.ErrStopWatch
		}
		got = append(got, m.ID)
		switch m.ID {
		case "m1":
			t.Error("the message at the position was sent again")
		case "m2":
			nodes[0].Kill() // the stream's node dies; the watch moves on
			if _, err := c.Append(ctx, "w", []client.Message{{ID: "m3", Role: "user", Content: "three"}}); err != nil {
				t.Error(err)
			}
		case "m3":
			return client.ErrStopWatch
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "m2" || got[1] != "m3" {
		t.Fatalf("watched %v, want [m2 m3]", got)
	}
}
