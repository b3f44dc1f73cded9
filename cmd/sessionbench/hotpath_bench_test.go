package main

import (
	"context"
	"io"
	"testing"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/testnode"
)

// The cost per request of what a worker does, against a real node: the
// numbers to compare when the request path changes (go test -bench HotPath
// -benchmem ./cmd/sessionbench).

func benchConfig(b *testing.B, url string) (*config, *clients) {
	cfg, err := parseFlags([]string{"--addrs", url, "--sessions", "10", "--concurrency", "1"}, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	return cfg, newClients(cfg)
}

func BenchmarkHotPathAppend(b *testing.B) {
	n := testnode.Start(b, testnode.Options{Shards: 1})[0]
	cfg, cl := benchConfig(b, n.URL)
	w := &worker{client: cl.forWorker(0)}
	content := randomContent(cfg.messageBytes + contentSlack)
	b.ReportAllocs()
	for b.Loop() {
		w.seq++
		off := int(w.seq % contentSlack)
		req := buildCall(cfg, opAppend, int(w.seq%10), 0, w.seq, content[off:off+cfg.messageBytes])
		if o := execute(w.client, cfg.addrs[0], req, false); o.status != 201 {
			b.Fatalf("append: %+v", o)
		}
	}
}

func BenchmarkHotPathState(b *testing.B) {
	n := testnode.Start(b, testnode.Options{Shards: 1})[0]
	cfg, cl := benchConfig(b, n.URL)
	c, _ := client.New(client.Config{Endpoints: []string{n.URL}})
	if _, err := c.Update(context.Background(), sessionID(cfg.prefix, 0), map[string]any{"step": 1}); err != nil {
		b.Fatal(err)
	}
	w := &worker{client: cl.forWorker(0)}
	b.ReportAllocs()
	for b.Loop() {
		req := buildCall(cfg, opState, 0, 0, 0, "")
		if o := execute(w.client, cfg.addrs[0], req, false); o.status != 200 {
			b.Fatalf("state: %+v", o)
		}
	}
}
