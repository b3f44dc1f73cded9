package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/internal/testnode"
)

// appendCounter counts the appends each node answered, however it served them.
type appendCounter struct {
	mu sync.Mutex
	n  map[string]int64 // node → appends answered 201
}

func (a *appendCounter) metricsFor(node string) httpapi.Metrics { return nodeMetrics{a, node} }

type nodeMetrics struct {
	a    *appendCounter
	node string
}

func (m nodeMetrics) ObserveRequest(route, method string, status int, _ bool, _ time.Duration) {
	if method == http.MethodPost && strings.HasSuffix(route, "/messages") && status == http.StatusCreated {
		m.a.mu.Lock()
		m.a.n[m.node]++
		m.a.mu.Unlock()
	}
}

func (nodeMetrics) Refused(string) {}

// With --route leader every request reaches the leader of its session's
// shard, so a run on one session is served by one node alone; round-robin
// spreads the same run over every node given.
func TestRouteLeaderSendsEveryRequestToTheShardLeader(t *testing.T) {
	counts := &appendCounter{n: map[string]int64{}}
	var started sync.Mutex
	next := 0
	nodes := testnode.Start(t, testnode.Options{Nodes: 3, Shards: 2, API: func(c *httpapi.Config) {
		started.Lock()
		defer started.Unlock()
		next++
		c.Metrics = counts.metricsFor(fmt.Sprint("node ", next)) // which node is which does not matter
	}})
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.URL)
	}

	run := func(route string) Report {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := realMain([]string{"--addrs", strings.Join(addrs, ","), "--json", "--duration", "0", "--requests", "300",
			"--concurrency", "4", "--sessions", "1", "--mix", "append=1", "--prefix", "route-" + route, "--route", route}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("--route %s: exit %d; stderr:\n%s", route, code, stderr.String())
		}
		var rep Report
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("report: %v\n%s", err, stdout.String())
		}
		return rep
	}
	served := func() map[string]int64 {
		counts.mu.Lock()
		defer counts.mu.Unlock()
		m := counts.n
		counts.n = map[string]int64{}
		return m
	}

	// Right after start the balancer may still hand a shard over, and a
	// move during the run would rightly send requests to two leaders.
	waitSteadyLeaders(t, nodes[0], 2)
	rep := run("leader")
	if rep.Config.Route != "leader" || rep.Total.Errors > 3 {
		t.Fatalf("route %q, %d errors (%v); want leader and no more than an election's few", rep.Config.Route, rep.Total.Errors, rep.ErrorCodes)
	}
	if by := served(); len(by) != 1 {
		t.Errorf("--route leader: appends served by %v, want one node (the leader) only", by)
	}

	run("any")
	if by := served(); len(by) != 3 {
		t.Errorf("--route any: appends served by %v, want all three nodes", by)
	}
}

// waitSteadyLeaders waits until the leaders of shards 0..shards-1, as n
// knows them, have stayed the same for longer than a balancing round.
func waitSteadyLeaders(t *testing.T, n *testnode.Node, shards uint32) {
	t.Helper()
	const steady = 3 * time.Second // a balancing round is 1–1.5 s
	leaders := func() string {
		var b strings.Builder
		for s := uint32(0); s < shards; s++ {
			fmt.Fprintf(&b, "%d:%s ", s, n.Leader(s))
		}
		return b.String()
	}
	last, since := leaders(), time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Since(since) < steady; {
		if time.Now().After(deadline) {
			t.Fatalf("shard leadership still moving after 30 s: %s", last)
		}
		time.Sleep(100 * time.Millisecond)
		if now := leaders(); now != last || strings.Contains(now, ": ") {
			last, since = now, time.Now()
		}
	}
}

// A routed request asks for the leader again only when the answer says the
// node may no longer lead: not when the leader is merely busy.
func TestOnlyAnswersThatMayMeanANewLeaderForgetTheRoute(t *testing.T) {
	for _, c := range []struct {
		o    outcome
		gone bool
	}{
		{outcome{status: 201}, false},
		{outcome{status: 412, code: "version_mismatch"}, false},
		{outcome{status: 429, code: "rate_limited"}, false},
		{outcome{status: 503, code: "overloaded"}, false},
		{outcome{status: 507, code: "insufficient_storage"}, false},
		{outcome{transport: "connection_refused"}, true},
		{outcome{status: 307}, true},
		{outcome{status: 503, code: "no_leader"}, true},
		{outcome{status: 503, code: "shutting_down"}, true},
		{outcome{status: 503, code: "outcome_unknown"}, true},
	} {
		if got := c.o.leaderGone(); got != c.gone {
			t.Errorf("%+v: leaderGone = %v, want %v", c.o, got, c.gone)
		}
	}
}
