package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/httpapi"
)

// startNodeWithShards is openNode with another shard count, on a fresh
// directory; only /readyz is waited for.
func startNodeWithShards(tb testing.TB, shards int) *node {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	logger := testLogger(tb)
	cn, err := cluster.Start(cluster.Config{
		NodeID: testNodeID, DataDir: tb.TempDir(), RaftListener: ln, RaftAdvertise: ln.Addr().String(),
		HTTPAdvertise: httpLn.Addr().String(), GossipBind: "127.0.0.1:0", BootstrapExpect: 1,
		ShardCount: shards, Replicas: 1, Logger: logger,
		ShardTuning: testTuning(),
	})
	if err != nil {
		ln.Close()
		httpLn.Close()
		tb.Fatal(err)
	}
	cfg := httpapi.DefaultConfig()
	cfg.Logger, cfg.Cluster, cfg.Replicas = logger, cn, cn
	n := &node{tb: tb, node: cn, host: cn.Host(), client: &http.Client{Transport: newTransport(), Timeout: time.Minute}}
	n.srv = httptest.NewUnstartedServer(httpapi.New(cn, cfg))
	n.srv.Listener.Close()
	n.srv.Listener = httpLn
	n.srv.Start()
	n.url = n.srv.URL
	tb.Cleanup(n.close)
	for deadline := time.Now().Add(startTimeout); ; time.Sleep(10 * time.Millisecond) {
		if r, err := n.tryDo(http.MethodGet, "/readyz", nil); err == nil && r.Status == http.StatusOK {
			return n
		}
		if time.Now().After(deadline) {
			tb.Fatal("node not ready")
		}
	}
}

// Paging through 100 000 sessions on one node of 16 shards, over HTTP, as
// a client following next does. The sessions are written straight through
// raft (no HTTP) to set up quickly; each holds one short message. Reports
// sessions listed per second for the default page size and the largest.
//
//	go test -run='^$' -bench=ListSessions -benchtime=3x ./httpapi
func BenchmarkHTTPListSessions100k(b *testing.B) {
	const sessions, shards = 100_000, 16
	n := startNodeWithShards(b, shards)
	ids := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				cmd := &fsm.Command{Op: fsm.OpAppendMessages, Session: id, At: time.Now().UnixMilli(),
					Messages: []fsm.NewMessage{{ID: "m1", Role: "user", Content: "hello"}}}
				for {
					res, err := n.node.Apply(context.Background(), n.node.ShardFor(id), cmd)
					if err == nil && res.Status == fsm.StatusOK {
						break
					}
					if err == nil {
						b.Errorf("create %s: %v %s", id, res.Status, res.Detail)
						return
					}
					time.Sleep(10 * time.Millisecond) // a shard not ready yet
				}
			}
		}()
	}
	start := time.Now()
	for i := 0; i < sessions; i++ {
		ids <- fmt.Sprintf("session-%06d", (i*7919)%sessions)
	}
	close(ids)
	wg.Wait()
	b.Logf("created %d sessions in %v", sessions, time.Since(start).Round(time.Millisecond))

	for _, limit := range []int{100, 1000} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			listed, pages := 0, 0
			for b.Loop() {
				after := ""
				for {
					q := url.Values{"limit": {fmt.Sprint(limit)}}
					if after != "" {
						q.Set("after", after)
					}
					r, err := n.tryDo(http.MethodGet, "/v1/sessions?"+q.Encode(), nil)
					if err != nil || r.Status != http.StatusOK {
						b.Fatalf("list: %v %v", r, err)
					}
					var l struct {
						Sessions []json.RawMessage
						Next     string
					}
					if err := json.Unmarshal(r.Body, &l); err != nil {
						b.Fatal(err)
					}
					listed += len(l.Sessions)
					pages++
					if after = l.Next; after == "" {
						break
					}
				}
			}
			if listed != sessions*b.N {
				b.Fatalf("listed %d sessions, want %d", listed, sessions*b.N)
			}
			s := b.Elapsed().Seconds()
			b.ReportMetric(float64(listed)/s, "sessions/s")
			b.ReportMetric(float64(pages)/s, "pages/s")
		})
	}
}
