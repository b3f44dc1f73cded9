package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// benchClients is how many requests the parallel benchmarks keep in
// flight: b.SetParallelism multiplies it by GOMAXPROCS, so round up.
const benchClients = 64

func setBenchParallelism(b *testing.B) {
	p := (benchClients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	b.SetParallelism(p)
}

// benchDo sends one request and drains the answer, failing on any status
// but want.
func benchDo(b *testing.B, c *http.Client, method, url string, body []byte, want int) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		b.Error(err)
		return
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	if resp.StatusCode != want {
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		b.Errorf("%s %s: %d %s", method, url, resp.StatusCode, data)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// reportOps reports throughput and how many connections the clients
// opened (about benchClients when keep-alive works).
func reportOps(b *testing.B, n *node) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "ops/s")
	}
	b.ReportMetric(float64(n.conns.Load()), "conns")
}

// BenchmarkHTTPAppend measures POST …/messages of one 256-byte message
// with ~64 concurrent clients spread over 1024 sessions on a real node:
// every acknowledged append is fsynced to the raft log (boltdb).
func BenchmarkHTTPAppend(b *testing.B) {
	n := startNode(b)
	content := strings.Repeat("a", 256)
	const sessions = 1024
	var seq atomic.Uint64
	setBenchParallelism(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			url := n.url + sessionPath(fmt.Sprintf("bench-%d", i%sessions), "/messages")
			body := fmt.Appendf(nil, `{"id":"m%d","role":"user","content":"%s"}`, i, content)
			benchDo(b, n.client, http.MethodPost, url, body, http.StatusCreated)
		}
	})
	b.StopTimer()
	reportOps(b, n)
}

// benchReadSession creates a session of 20 messages of 256 bytes.
func benchReadSession(b *testing.B, n *node) string {
	id := "bench-read"
	content := strings.Repeat("r", 256)
	batch := make([]any, 20)
	for i := range batch {
		batch[i] = msg(fmt.Sprintf("m%d", i), []string{"user", "assistant"}[i%2], content)
	}
	wantStatus(b, n.do(http.MethodPost, sessionPath(id, "/messages"), map[string]any{"messages": batch}), http.StatusCreated)
	wantStatus(b, n.do(http.MethodPut, sessionPath(id), `{"pendingMatch":{"id":"x","score":0.7},"bookingInfo":{"nights":3}}`), http.StatusOK)
	return id
}

func benchGet(b *testing.B, consistency string) {
	n := startNode(b)
	url := n.url + sessionPath(benchReadSession(b, n)) + "?consistency=" + consistency
	setBenchParallelism(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchDo(b, n.client, http.MethodGet, url, nil, http.StatusOK)
		}
	})
	b.StopTimer()
	reportOps(b, n)
}

// BenchmarkHTTPGetLinearizable measures GET of a 20-message session with a
// leadership confirmation per read round (coalesced across readers).
func BenchmarkHTTPGetLinearizable(b *testing.B) { benchGet(b, "linearizable") }

// BenchmarkHTTPGetStale measures GET of the same session from memory with
// no confirmation.
func BenchmarkHTTPGetStale(b *testing.B) { benchGet(b, "stale") }
