package metrics

import (
	"slices"
	"strings"
	"testing"
	"time"

	armon "github.com/armon/go-metrics"
	gometrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// raft's and memberlist's go-metrics keys become Prometheus names under
// the sessiond_ prefix in snake_case, counters with _total, and no peer id
// or odd character in a key can make an invalid name.
func TestBridgedNamesAreSnakeCasePrometheusNames(t *testing.T) {
	for _, c := range []struct {
		kind byte
		key  []string
		want string
	}{
		{kindSample, []string{"raft", "commitTime"}, "sessiond_raft_commit_time"},
		{kindSample, []string{"raft", "replication", "appendEntries", "rpc"}, "sessiond_raft_replication_append_entries_rpc"},
		{kindCounter, []string{"raft", "state", "leader"}, "sessiond_raft_state_leader_total"},
		{kindCounter, []string{"memberlist", "msg", "alive"}, "sessiond_memberlist_msg_alive_total"},
		{kindGauge, []string{"raft", "fsm", "lastRestoreDuration"}, "sessiond_raft_fsm_last_restore_duration"},
		{kindGauge, []string{"memberlist", "health", "score"}, "sessiond_memberlist_health_score"},
		{kindSample, []string{"raft", "heartbeat", "node-2.example:7000"}, "sessiond_raft_heartbeat_node_2_example_7000"},
		{kindCounter, []string{"already", "total"}, "sessiond_already_total"},
	} {
		got := promName(c.kind, c.key)
		if got != c.want {
			t.Errorf("%c %v → %s, want %s", c.kind, c.key, got, c.want)
		}
	}
}

// Metrics reported through go-metrics' global, as raft and memberlist
// report them, and through armon/go-metrics', as raft-boltdb does, reach
// every registry and pass Prometheus' lint, and a key
// renamed once is served from the cache with the same name.
func TestGoMetricsReportsReachTheRegistryAndPassLint(t *testing.T) {
	r := New()
	for range 3 {
		gometrics.IncrCounter([]string{"raft", "apply"}, 1)
		gometrics.AddSampleWithLabels([]string{"raft", "net", "rpcDecode"}, 0.002, []gometrics.Label{{Name: "rpcType", Value: "AppendEntries"}})
		gometrics.SetGauge([]string{"memberlist", "health", "score"}, 0)
		armon.MeasureSince([]string{"raft", "boltdb", "storeLogs"}, time.Now()) // raft-boltdb's global
	}
	problems, err := testutil.GatherAndLint(r.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	families, err := r.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
		if f.GetName() == "sessiond_raft_apply_total" && f.GetMetric()[0].GetCounter().GetValue() < 3 {
			t.Errorf("sessiond_raft_apply_total = %v, want at least 3", f.GetMetric()[0].GetCounter().GetValue())
		}
		if f.GetName() == "sessiond_raft_net_rpc_decode" && f.GetMetric()[0].GetLabel()[0].GetName() != "rpc_type" {
			t.Errorf("rpcDecode label %q, want rpc_type", f.GetMetric()[0].GetLabel()[0].GetName())
		}
	}
	for _, want := range []string{"sessiond_raft_apply_total", "sessiond_raft_net_rpc_decode", "sessiond_memberlist_health_score", "sessiond_raft_boltdb_store_logs", "go_goroutines", "sessiond_refusals_total"} {
		if !slices.Contains(names, want) {
			t.Errorf("registry lacks %s; it has %v", want, names)
		}
	}
}

// The request histogram's labels take the method from a closed set, and a
// request without a route template is counted under RouteNone.
func TestObserveRequestNormalizesMethodAndRoute(t *testing.T) {
	r := New()
	r.ObserveRequest("", "PROPFIND", 404, false, 0)
	r.ObserveRequest("/healthz", "GET", 200, false, 0)
	r.ObserveRequest("/healthz", "GET", 200, false, 0)
	families, err := r.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != "sessiond_http_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				parts = append(parts, l.GetName()+"="+l.GetValue())
			}
			got[strings.Join(parts, ",")] = m.GetHistogram().GetSampleCount()
		}
	}
	want := map[string]uint64{
		"method=other,route=none,served=local,status=404":   1,
		"method=GET,route=/healthz,served=local,status=200": 2,
	}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

// BenchmarkObserveRequest is what the request path pays per request for
// its metrics, with requests on every core at once.
func BenchmarkObserveRequest(b *testing.B) {
	r := New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.ObserveRequest("/api/chat/session/:id/messages", "POST", 201, false, 3*time.Millisecond)
		}
	})
}

// BenchmarkBridgedSample is what raft pays for one timing it reports, as
// it does several times per log write.
func BenchmarkBridgedSample(b *testing.B) {
	New()
	key := []string{"raft", "commitTime"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			gometrics.AddSample(key, 0.001)
		}
	})
}
