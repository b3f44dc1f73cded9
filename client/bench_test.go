package client_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/testnode"
)

// The typed methods' cost per call against a real node, the node's own
// work included (go test -bench . -benchmem ./client).

func BenchmarkClientAppend(b *testing.B) {
	n := testnode.Start(b, testnode.Options{Shards: 1})[0]
	c, _ := client.New(client.Config{Endpoints: []string{n.URL}})
	content := strings.Repeat("x", 256)
	var seq uint64
	b.ReportAllocs()
	for b.Loop() {
		seq++
		if _, err := c.Append(context.Background(), "bench", []client.Message{{ID: "m" + strconv.FormatUint(seq, 10), Role: "user", Content: content}}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClientState(b *testing.B) {
	n := testnode.Start(b, testnode.Options{Shards: 1})[0]
	c, _ := client.New(client.Config{Endpoints: []string{n.URL}})
	if _, err := c.Update(context.Background(), "bench", map[string]any{"step": 1}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.State(context.Background(), "bench"); err != nil {
			b.Fatal(err)
		}
	}
}
