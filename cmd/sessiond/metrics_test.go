package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/deploy/grafana"
)

// scrape is one /metrics answer: every sample by its name with labels.
type scrape struct {
	text    string
	samples map[string]float64 // `name{labels}` → value
	names   map[string]bool    // sample and family names
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)`)

func parseScrape(text string) scrape {
	s := scrape{text: text, samples: map[string]float64{}, names: map[string]bool{}}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			s.names[f[2]] = true
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		s.names[m[1]] = true
		s.samples[m[1]+m[2]] += v
	}
	return s
}

// sum adds the samples of a metric whose labels contain every one of want.
func (s scrape) sum(name string, want ...string) float64 {
	total := 0.0
	for k, v := range s.samples {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(k, w)
		}
		if ok {
			total += v
		}
	}
	return total
}

func (p *proc) scrapeMetrics(t *testing.T, token string) scrape {
	t.Helper()
	code, body := doWith(t, p.client(), http.MethodGet, p.url("/metrics"), token, "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics with the read token = %d %s", code, body)
	}
	return parseScrape(string(body))
}

// A 3-node cluster serves /metrics to the read scope only, in a format
// promtool accepts, with what an operator watches: requests by route
// template and by whether the node served or forwarded them, every shard
// led by exactly one node, raft's commit timings and memberlist's gossip
// bridged from go-metrics, the shared log's fsync counters, snapshots,
// and the Go runtime. Every metric the Grafana dashboard queries exists.
func TestMetricsOfAClusterPassPromtoolAndCoverTheDashboard(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (.ci/run does)")
	}
	tokens := writeTokenFile(t)
	const shards = 4
	procs := startClusterWith(t, 3, shards, func(_ int, p *proc) {
		p.extraArgs = append(p.extraArgs, "--token-file", tokens, "--snapshot-threshold", "16", "--snapshot-interval", "200ms",
			"--replicas", "1") // a node without a replica of a shard forwards over HTTP
	})

	for _, tc := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {dataToken, http.StatusForbidden}, {readToken, http.StatusOK}, {adminToken, http.StatusOK}} {
		if code, body := doWith(t, procs[0].client(), http.MethodGet, procs[0].url("/metrics"), tc.token, ""); code != tc.want {
			t.Fatalf("GET /metrics with token %q = %d %s, want %d", tc.token, code, body, tc.want)
		}
	}

	// Enough writes through every node that each shard snapshots, and
	// some requests are forwarded to a leader on another node.
	const sessions, perSession = 8, 12
	for i := 0; i < sessions; i++ {
		for j := 0; j < perSession; j++ {
			p := procs[(i+j)%len(procs)]
			body := fmt.Sprintf(`{"id":"m%d","role":"user","content":"hello"}`, j)
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				code, resp := doWith(t, p.client(), http.MethodPost, p.url(fmt.Sprintf("/api/chat/session/metrics-%d/messages", i)), dataToken, body)
				// 200: a retry found the append stored by an attempt that
				// answered outcome_unknown (a leader change under load).
				if code == http.StatusCreated || code == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("append = %d %s", code, resp)
				}
			}
		}
	}

	board, err := grafana.Parse(grafana.Dashboard)
	if err != nil {
		t.Fatal(err)
	}
	want := append(board.Metrics(), "sessiond_shard_term", "sessiond_shard_commit_index", "sessiond_shard_applied_index",
		"sessiond_shard_sessions", "sessiond_shard_snapshot_bytes", "sessiond_raft_commit_time", "sessiond_heartbeats_total",
		"sessiond_memberlist_gossip", "go_gc_duration_seconds")
	var scrapes []scrape
	var missing []string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		scrapes = scrapes[:0]
		seen := map[string]bool{}
		for _, p := range procs {
			s := p.scrapeMetrics(t, readToken)
			scrapes = append(scrapes, s)
			for n := range s.names {
				seen[n] = true
			}
		}
		missing = missing[:0]
		for _, m := range want {
			if !seen[m] {
				missing = append(missing, m)
			}
		}
		leaders := 0.0
		for _, s := range scrapes {
			leaders += s.sum("sessiond_shard_leader")
		}
		if len(missing) == 0 && leaders == shards {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: metrics missing %v, %v shard leaders over the nodes (want %d)", missing, leaders, shards)
		}
	}

	for i, s := range scrapes {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(s.text)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("promtool check metrics on n%d: %v\n%s", i+1, err, out.String())
		}
	}

	const route = `route="/api/chat/session/:id/messages"`
	var local, forwarded float64
	for _, s := range scrapes {
		for _, status := range []string{`status="201"`, `status="200"`} {
			local += s.sum("sessiond_http_request_duration_seconds_count", route, `method="POST"`, status, `served="local"`)
			forwarded += s.sum("sessiond_http_request_duration_seconds_count", route, `method="POST"`, status, `served="forwarded"`)
		}
	}
	// A forwarded append is counted by the node that forwarded it and by
	// the leader that served it; a retried one once more.
	if local < sessions*perSession {
		t.Errorf("appends served locally = %v, want at least %d (one per acknowledged append)", local, sessions*perSession)
	}
	if forwarded == 0 {
		t.Errorf("no forwarded append counted; every node took appends for shards it does not lead")
	}
	for i, s := range scrapes {
		if s.sum("sessiond_cluster_members", `state="alive"`) != 3 {
			t.Errorf("n%d sees %v alive members, want 3", i+1, s.sum("sessiond_cluster_members", `state="alive"`))
		}
	}
}
