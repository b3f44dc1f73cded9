package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/testnode"
)

// endpoint is a node the examples run against, started by TestMain.
var endpoint string

func TestMain(m *testing.M) {
	nodes, stop, err := testnode.StartMain(testnode.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start a node for the examples:", err)
		os.Exit(1)
	}
	endpoint = nodes[0].URL
	code := m.Run()
	stop()
	os.Exit(code)
}

func Example() {
	ctx := context.Background()
	c, err := client.New(client.Config{Endpoints: []string{endpoint}})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	// Messages with ids can be sent again safely: a repeat is not stored twice.
	_, err = c.Append(ctx, "example-1", []client.Message{
		{ID: "m1", Role: "user", Content: "Find me a flight to Lisbon"},
		{ID: "m2", Role: "assistant", Content: "Which dates?"},
	})
	if err != nil {
		panic(err)
	}
	_, err = c.Update(ctx, "example-1", map[string]any{"lastSearchCriteria": map[string]string{"to": "LIS"}})
	if err != nil {
		panic(err)
	}
	s, err := c.Get(ctx, "example-1")
	if err != nil {
		panic(err)
	}
	fmt.Println(len(s.Messages), "messages;", "lastSearchCriteria =", string(s.Fields["lastSearchCriteria"]))
	// Output: 2 messages; lastSearchCriteria = {"to":"LIS"}
}

func ExampleIfVersion() {
	ctx := context.Background()
	c, _ := client.New(client.Config{Endpoints: []string{endpoint}})
	defer c.Close()

	s, _ := c.Update(ctx, "example-2", map[string]any{"step": "search"})
	// Someone else writes in between …
	_, _ = c.Update(ctx, "example-2", map[string]any{"step": "book"})
	// … so a write conditional on the version read fails and changes nothing.
	_, err := c.Update(ctx, "example-2", map[string]any{"step": "confirm"}, client.IfVersion(s.Version))
	var e *client.Error
	if errors.As(err, &e) && errors.Is(err, client.ErrVersionMismatch) {
		fmt.Println("changed since read; current version is newer:", e.Version > s.Version)
	}
	// Output: changed since read; current version is newer: true
}

func ExampleClient_Messages() {
	ctx := context.Background()
	c, _ := client.New(client.Config{Endpoints: []string{endpoint}})
	defer c.Close()

	for i := range 5 {
		_, _ = c.Append(ctx, "example-3", []client.Message{{ID: fmt.Sprint("m", i), Role: "user", Content: fmt.Sprint("message ", i)}})
	}
	// Page through the messages two at a time.
	q := client.MessagesQuery{Limit: 2}
	for {
		page, err := c.Messages(ctx, "example-3", q)
		if err != nil {
			panic(err)
		}
		for _, m := range page.Messages {
			fmt.Print(m.Seq, " ")
		}
		if !page.HasMore {
			break
		}
		q.After = page.NextAfter
	}
	fmt.Println()
	// Output: 1 2 3 4 5
}

func ExampleClient_Watch() {
	ctx := context.Background()
	c, _ := client.New(client.Config{Endpoints: []string{endpoint}})
	defer c.Close()

	_, _ = c.Append(ctx, "example-4", []client.Message{{ID: "m1", Role: "user", Content: "hello"}})
	// The stream starts with a snapshot of the whole session, then every change.
	seen := 0
	err := c.Watch(ctx, "example-4", client.WatchOptions{}, func(ev client.Event) error {
		fmt.Println(ev.Type)
		if seen++; seen == 1 {
			_, _ = c.Append(ctx, "example-4", []client.Message{{ID: "m2", Role: "assistant", Content: "hi"}})
			return nil
		}
		return client.ErrStopWatch
	})
	fmt.Println("err:", err)
	// Output:
	// snapshot
	// message
	// err: <nil>
}

func ExampleErrSessionNotFound() {
	c, _ := client.New(client.Config{Endpoints: []string{endpoint}})
	defer c.Close()
	_, err := c.Get(context.Background(), "example-never-written")
	fmt.Println(errors.Is(err, client.ErrSessionNotFound))
	// Output: true
}
