package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// clusterView is the part of GET /v1/cluster the tests look at.
type clusterView struct {
	Node       string `json:"node"`
	Version    string `json:"version"`
	ShardCount int    `json:"shardCount"`
	Ready      bool   `json:"ready"`
	Members    []any  `json:"members"`
	Shards     []struct {
		ID           uint32 `json:"id"`
		State        string `json:"state"`
		Leader       string `json:"leader"`
		Term         uint64 `json:"term"`
		CommitIndex  uint64 `json:"commitIndex"`
		AppliedIndex uint64 `json:"appliedIndex"`
		Sessions     int    `json:"sessions"`
		Local        bool   `json:"local"`
		Replicas     []struct {
			ID       string `json:"id"`
			Suffrage string `json:"suffrage"`
		} `json:"replicas"`
	} `json:"shards"`
	RaftLog *struct {
		Commits          uint64  `json:"commits"`
		Writes           uint64  `json:"writes"`
		WritesPerCommit  float64 `json:"writesPerCommit"`
		MeanCommitMillis float64 `json:"meanCommitMillis"`
	} `json:"raftLog"`
}

// TestHealthzAndReadyzAnswer200OnAServingNode covers the probes.
func TestHealthzAndReadyzAnswer200OnAServingNode(t *testing.T) {
	n := startNode(t)
	r := n.get("/healthz")
	wantStatus(t, r, http.StatusOK)
	if !jsonEqual(t, string(r.Body), `{"status":"ok"}`) {
		t.Fatalf("healthz %s", r.Body)
	}
	r = n.get("/readyz")
	wantStatus(t, r, http.StatusOK)
	if !jsonEqual(t, string(r.Body), `{"status":"ready"}`) {
		t.Fatalf("readyz %s", r.Body)
	}
}

// TestClusterListsEveryLocalShardWithItsLeader covers GET /v1/cluster on a
// standalone node.
func TestClusterListsEveryLocalShardWithItsLeader(t *testing.T) {
	n := startNode(t)
	perShard := map[uint32]int{}
	for i := 0; i < 12; i++ {
		id := fmt.Sprintf("c%d", i)
		n.appendMsg(id, "m", "x")
		perShard[n.host.ShardFor(id)]++
	}
	r := n.get("/v1/cluster")
	wantStatus(t, r, http.StatusOK)
	var c clusterView
	decode(t, r, &c)
	if c.Node != testNodeID || c.Version != "test" || c.ShardCount != testShardCount || !c.Ready || c.Members == nil || len(c.Shards) != testShardCount {
		t.Fatalf("cluster %s", r.Body)
	}
	for i, s := range c.Shards {
		if s.ID != uint32(i) || s.State != "Leader" || s.Leader != testNodeID || !s.Local || s.Term == 0 ||
			s.CommitIndex == 0 || s.AppliedIndex != s.CommitIndex || s.Sessions != perShard[s.ID] ||
			len(s.Replicas) != 1 || s.Replicas[0].ID != testNodeID || s.Replicas[0].Suffrage != "voter" {
			t.Fatalf("shard %d: %+v (want %d sessions)", i, s, perShard[s.ID])
		}
	}
	// Every write went through the node's shared raft log.
	if l := c.RaftLog; l == nil || l.Commits == 0 || l.Writes < 12 || l.WritesPerCommit < 1 || l.MeanCommitMillis <= 0 {
		t.Fatalf("raftLog %+v", l)
	}
}

// TestSessionOwnerNamesTheShardAndItsLeader covers GET
// /v1/sessions/{id}/owner for ids on every shard, existing or not.
func TestSessionOwnerNamesTheShardAndItsLeader(t *testing.T) {
	n := startNode(t)
	seen := map[uint32]bool{}
	for i := 0; len(seen) < testShardCount; i++ {
		if i > 1000 {
			t.Fatalf("ids never covered every shard: %v", seen)
		}
		id := fmt.Sprintf("owner-%d", i)
		want := n.host.ShardFor(id)
		if seen[want] {
			continue
		}
		seen[want] = true
		r := n.get("/v1/sessions/" + id + "/owner")
		wantStatus(t, r, http.StatusOK)
		var o struct {
			Session  string   `json:"session"`
			Shard    uint32   `json:"shard"`
			Leader   string   `json:"leader"`
			Replicas []string `json:"replicas"`
		}
		decode(t, r, &o)
		if o.Session != id || o.Shard != want || o.Leader != testNodeID || len(o.Replicas) != 1 || o.Replicas[0] != testNodeID {
			t.Fatalf("owner %s, want shard %d", r.Body, want)
		}
		if got := r.Header.Get("X-Sessiond-Shard"); got != fmt.Sprint(want) {
			t.Fatalf("X-Sessiond-Shard %q, want %d", got, want)
		}
		// The session route names the same shard.
		if got := n.get(sessionPath(id)).Header.Get("X-Sessiond-Shard"); got != fmt.Sprint(want) {
			t.Fatalf("session route names shard %q, owner %d", got, want)
		}
	}
}

// TestTransferLeadershipOnAStandaloneNodeIsAConflict covers the admin
// route a standalone node cannot carry out.
func TestTransferLeadershipOnAStandaloneNodeIsAConflict(t *testing.T) {
	n := startNode(t)
	wantError(t, n.do(http.MethodPost, "/v1/shards/1/transfer-leadership", nil), http.StatusConflict, "no_other_replica")
	wantError(t, n.do(http.MethodPost, "/v1/shards/4/transfer-leadership", nil), http.StatusBadRequest, "invalid_shard")
	wantError(t, n.do(http.MethodPost, "/v1/shards/x/transfer-leadership", nil), http.StatusBadRequest, "invalid_shard")
	wantError(t, n.do(http.MethodPost, "/v1/shards/-1/transfer-leadership", nil), http.StatusBadRequest, "invalid_shard")
}

// TestEveryConsistencyLevelReadsTheLatestAcknowledgedWrite writes and reads
// back at once at each level; on one node every level sees the write.
func TestEveryConsistencyLevelReadsTheLatestAcknowledgedWrite(t *testing.T) {
	n := startNode(t)
	id := "levels"
	for i := 0; i < 10; i++ {
		a := n.appendMsg(id, fmt.Sprintf("m%d", i), "x")
		for _, level := range []string{"linearizable", "leader", "stale"} {
			r := n.get(sessionPath(id) + "?consistency=" + level)
			wantStatus(t, r, http.StatusOK)
			wantETag(t, r, a.Version)
			var doc sessionDoc
			decode(t, r, &doc)
			if len(doc.Messages) != i+1 {
				t.Fatalf("%s read %d messages after %d appends", level, len(doc.Messages), i+1)
			}
		}
	}
}

// TestEveryResponseNamesTheNode checks X-Sessiond-Node on successes,
// errors, 404s and 405s of every route family (tryDo checks it on every
// request of every test; this test makes the coverage explicit).
func TestEveryResponseNamesTheNode(t *testing.T) {
	n := startNode(t)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/healthz", ""}, {"GET", "/readyz", ""}, {"GET", "/v1/cluster", ""},
		{"GET", "/v1/sessions/x/owner", ""}, {"PUT", sessionPath("x"), `{"a":1}`},
		{"GET", sessionPath("x"), ""}, {"GET", sessionPath("y"), ""}, {"GET", sessionPath("bad!"), ""},
		{"GET", "/nope", ""}, {"POST", sessionPath("x"), ""}, {"PUT", sessionPath("x"), `[`},
		{"POST", "/v1/shards/0/transfer-leadership", ""},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		r := n.do(c.method, c.path, body)
		if r.Header.Get("X-Sessiond-Node") != testNodeID {
			t.Fatalf("%s: X-Sessiond-Node %q", r, r.Header.Get("X-Sessiond-Node"))
		}
	}
}

// TestStoppedShardsAnswer503WithRetryAfterNotA500 closes the node's
// shards under a running HTTP server: readiness fails and session routes
// answer 503 no_leader (no replica here, no leader known anywhere) with
// Retry-After, reads and writes alike.
func TestStoppedShardsAnswer503WithRetryAfterNotA500(t *testing.T) {
	n := startNode(t)
	n.appendMsg("s", "m1", "x")
	n.closeHost()

	r := n.get("/readyz")
	wantError(t, r, http.StatusServiceUnavailable, "not_ready")
	if r.Header.Get("Retry-After") != "1" {
		t.Fatalf("%s: Retry-After %q", r, r.Header.Get("Retry-After"))
	}
	wantStatus(t, n.get("/healthz"), http.StatusOK)
	for _, c := range []struct{ method, path, body string }{
		{"GET", sessionPath("s"), ""},
		{"GET", sessionPath("s") + "?consistency=stale", ""},
		{"GET", sessionPath("s", "/messages"), ""},
		{"PUT", sessionPath("s"), `{"a":1}`},
		{"POST", sessionPath("s", "/messages"), `{"role":"user","content":"x"}`},
		{"DELETE", sessionPath("s"), ""},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		r := n.do(c.method, c.path, body)
		wantError(t, r, http.StatusServiceUnavailable, "no_leader")
		if r.Header.Get("Retry-After") != "1" {
			t.Fatalf("%s: Retry-After %q", r, r.Header.Get("Retry-After"))
		}
	}
	r = n.get("/v1/cluster")
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), `"ready":false`) {
		t.Fatalf("cluster of a stopped node %s", r.Body)
	}
}
