package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/sessiond/sessiond/auth"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/internal/poll"
)

// Tokens of the console's test cluster, one per scope.
const (
	adminToken = "console-admin-0123456789"
	readToken  = "console-read-0123456789"
	dataToken  = "console-data-0123456789"
)

// member is one in-process sessiond node: real raft, gossip and HTTP on
// loopback, with tokens required as a production node would.
type member struct {
	id       string
	node     *cluster.Node
	srv      *httptest.Server
	url      string
	stopOnce sync.Once
}

// kill stops the node as a crash would; once stopped, it stays stopped.
func (m *member) kill() { m.stop(false) }

// drainAndLeave is what a drain request does to a sessiond process: hand
// everything off, then close and leave the cluster.
func (m *member) drainAndLeave() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_ = m.node.Drain(ctx)
	m.stop(true)
}

func (m *member) stop(graceful bool) {
	m.stopOnce.Do(func() {
		m.srv.CloseClientConnections()
		m.srv.Close()
		if graceful {
			_ = m.node.Close()
		} else {
			m.node.Kill()
		}
	})
}

// fastGossip notices a dead node within seconds instead of memberlist's
// LAN defaults.
func fastGossip(c *memberlist.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 50 * time.Millisecond
	c.SuspicionMult = 2
}

// startMembers starts n nodes that bootstrap shards shards together, each
// requiring the test tokens, and waits until every shard has converged.
func startMembers(t *testing.T, n, shards int) []*member {
	t.Helper()
	tokenPath := t.TempDir() + "/tokens"
	body := fmt.Sprintf("admin %s\nread %s\ndata %s\n", adminToken, readToken, dataToken)
	if err := os.WriteFile(tokenPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.LoadTokenFile(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	level := slog.LevelError + 4 // quiet unless asked
	if os.Getenv("SESSIOND_TEST_LOG") != "" {
		level = slog.LevelInfo
	}
	var members []*member
	var join []string
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("n%d", i)
		raftLn := listen(t)
		httpLn := listen(t)
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("node", id)
		node, err := cluster.Start(cluster.Config{
			NodeID: id, DataDir: t.TempDir(), RaftListener: raftLn,
			RaftAdvertise: raftLn.Addr().String(), HTTPAdvertise: httpLn.Addr().String(),
			GossipBind: "127.0.0.1:0", Join: join, BootstrapExpect: n, ShardCount: shards, Replicas: 3,
			ShardTuning: patientTuning(),
			PeerToken:   func() string { return adminToken },
			Logger:      logger, TuneGossip: fastGossip, ReconcileInterval: 200 * time.Millisecond,
		})
		if err != nil {
			httpLn.Close()
			t.Fatalf("start %s: %v", id, err)
		}
		join = append(join, node.GossipAddr())
		cfg := httpapi.DefaultConfig()
		cfg.Logger, cfg.Cluster, cfg.Replicas, cfg.Version = logger, node, node, "console-test"
		cfg.Auth = &auth.Authenticator{Tokens: tokens}
		m := &member{id: id, node: node}
		cfg.OnDrain = func() { go m.drainAndLeave() }
		m.srv = httptest.NewUnstartedServer(httpapi.New(node, cfg))
		m.srv.Listener.Close()
		m.srv.Listener = httpLn
		m.srv.Start()
		m.url = m.srv.URL
		t.Cleanup(m.kill)
		members = append(members, m)
	}
	poll.Until(t, 60*time.Second, "every shard converged on 3 voters with a leader", func() error {
		var view clusterView
		if err := getJSON(members[0].url+"/v1/cluster", readToken, &view); err != nil {
			return err
		}
		if len(view.Members) != n || view.Summary.ShardsConverged != shards {
			return fmt.Errorf("%d members, %d of %d shards converged", len(view.Members), view.Summary.ShardsConverged, shards)
		}
		for _, s := range view.Shards {
			if s.Leader == "" {
				return fmt.Errorf("shard %d has no leader", s.ID)
			}
		}
		return nil
	})
	return members
}

// patientTuning is raft's tuning for a host whose cores other builds and a
// browser share: a slower heartbeat than a LAN's (and so a 500ms lease), so
// that leaders are not deposed by a scheduling hiccup while the page is
// looked at.
func patientTuning() cluster.ShardTuning {
	return cluster.ShardTuning{Heartbeat: time.Second}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// clusterView is the part of GET /v1/cluster the test reads.
type clusterView struct {
	Members []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"members"`
	Shards []struct {
		ID     uint32 `json:"id"`
		Leader string `json:"leader"`
	} `json:"shards"`
	Summary struct {
		ShardsConverged int            `json:"shardsConverged"`
		LeadersPerNode  map[string]int `json:"leadersPerNode"`
	} `json:"summary"`
}

var client = &http.Client{Timeout: 30 * time.Second}

// call sends a request with a token and returns the body, failing on any
// status but want.
func call(method, url, token, body string, want int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return b, fmt.Errorf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want, b)
	}
	return b, nil
}

func getJSON(url, token string, v any) error {
	b, err := call(http.MethodGet, url, token, "", http.StatusOK)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
