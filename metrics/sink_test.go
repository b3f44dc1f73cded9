package metrics

import (
	"strings"
	"testing"
	"time"

	armon "github.com/armon/go-metrics"
	gometrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// gather collects a sink alone, by family name.
func gather(t *testing.T, s *sink) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range families {
		out[f.GetName()] = f
	}
	return out
}

func droppedSamples(s *sink, reason string) float64 {
	return testutil.ToFloat64(s.dropped.WithLabelValues(reason))
}

// Samples become histograms in seconds, counters counters and gauges
// gauges, labelled as reported; keys spelled differently that make the
// same name and labels share one series instead of failing the scrape.
func TestSinkTypesAndSharedSeries(t *testing.T) {
	s := newSink(100, time.Minute)
	s.AddSample([]string{"raft", "commitTime"}, 0.002)
	s.AddSample([]string{"raft", "commit_time"}, 0.004)
	s.IncrCounterWithLabels([]string{"raft", "replication", "appendEntries", "logs"}, 3, []gometrics.Label{{Name: "peerId", Value: "n2"}})
	s.IncrCounterWithLabels([]string{"raft", "replication", "appendEntries", "logs"}, 2, []gometrics.Label{{Name: "peerId", Value: "n2"}})
	s.IncrCounterWithLabels([]string{"raft", "replication", "appendEntries", "logs"}, 1, []gometrics.Label{{Name: "peerId", Value: "n3"}})
	s.SetGauge([]string{"raft", "peers"}, 3)
	s.SetGauge([]string{"raft", "peers"}, 5)
	armonSink{s}.AddSampleWithLabels([]string{"raft", "boltdb", "storeLogs"}, 0.0005, []armon.Label{{Name: "x", Value: "y"}})
	f := gather(t, s)

	h := f["sessiond_raft_commit_time"]
	if h.GetType() != dto.MetricType_HISTOGRAM || len(h.GetMetric()) != 1 || h.GetMetric()[0].GetHistogram().GetSampleCount() != 2 {
		t.Errorf("commit time: %v", h)
	}
	c := f["sessiond_raft_replication_append_entries_logs_total"]
	if c.GetType() != dto.MetricType_COUNTER || len(c.GetMetric()) != 2 {
		t.Fatalf("append entries logs: %v", c)
	}
	for _, m := range c.GetMetric() {
		l := m.GetLabel()[0]
		want := map[string]float64{"n2": 5, "n3": 1}[l.GetValue()]
		if l.GetName() != "peer_id" || m.GetCounter().GetValue() != want {
			t.Errorf("%s=%s: %v, want %v", l.GetName(), l.GetValue(), m.GetCounter().GetValue(), want)
		}
	}
	if g := f["sessiond_raft_peers"]; g.GetType() != dto.MetricType_GAUGE || g.GetMetric()[0].GetGauge().GetValue() != 5 {
		t.Errorf("peers: %v", g)
	}
	if b := f["sessiond_raft_boltdb_store_logs"]; b.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("armon's store logs: %v", b)
	}
}

// Past the maximum of keys further keys are dropped and counted, and so
// are keys that make no valid series: a name taken with other labels or
// another type, a reserved label, a negative counter increment.
func TestSinkBoundsSeriesAndCountsDrops(t *testing.T) {
	s := newSink(4, time.Minute)
	s.AddSample([]string{"a"}, 1)
	s.AddSampleWithLabels([]string{"a"}, 1, []gometrics.Label{{Name: "peer", Value: "x"}}) // other labels
	s.SetGauge([]string{"a"}, 1)                                                           // another type
	s.AddSampleWithLabels([]string{"b"}, 1, []gometrics.Label{{Name: "le", Value: "x"}})   // reserved
	s.IncrCounter([]string{"c"}, -1)
	if got := droppedSamples(s, dropInvalid); got != 4 {
		t.Errorf("invalid drops %v, want 4", got)
	}
	s.AddSample([]string{"a"}, 1)
	s.SetGauge([]string{"a"}, 1) // cached as invalid
	if got := droppedSamples(s, dropInvalid); got != 5 {
		t.Errorf("invalid drops %v, want 5", got)
	}
	for i := range 3 {
		s.IncrCounter([]string{"peer", string(rune('a' + i))}, 1)
	}
	if got := droppedSamples(s, dropLimit); got != 3 {
		t.Errorf("limit drops %v, want 3", got)
	}
	if f := gather(t, s); len(f) != 2 || f["sessiond_a"] == nil {
		t.Errorf("families %v", f)
	}
	problems, err := testutil.CollectAndLint(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// A series not updated for the expiry is removed at a collection, which
// frees its place under the maximum; one updated stays.
func TestSinkExpiresIdleSeries(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newSink(2, time.Minute)
	s.now = func() time.Time { return now }
	s.AddSample([]string{"raft", "replication", "heartbeat", "gone"}, 1)
	s.AddSample([]string{"raft", "commitTime"}, 1)
	gather(t, s)
	now = now.Add(50 * time.Second)
	s.AddSample([]string{"raft", "commitTime"}, 1)
	gather(t, s)
	now = now.Add(50 * time.Second)
	f := gather(t, s)
	if f["sessiond_raft_replication_heartbeat_gone"] != nil || f["sessiond_raft_commit_time"] == nil {
		t.Fatalf("after expiry: %v", f)
	}
	s.AddSample([]string{"raft", "other"}, 1)
	if f := gather(t, s); f["sessiond_raft_other"] == nil || droppedSamples(s, dropLimit) != 0 {
		t.Errorf("expired key's place not freed: %v", f)
	}
}

// The hot path allocates nothing once a key has been seen, with labels
// or without, through either go-metrics.
func TestSinkSampleAllocatesNothing(t *testing.T) {
	s := newSink(100, time.Minute)
	key := []string{"raft", "net", "rpcDecode"}
	labels := []gometrics.Label{{Name: "rpcType", Value: "AppendEntries"}}
	alabels := []armon.Label{{Name: "rpcType", Value: "AppendEntries"}}
	s.AddSampleWithLabels(key, 1, labels)
	s.IncrCounter(key, 1)
	if n := testing.AllocsPerRun(100, func() {
		s.AddSampleWithLabels(key, 0.001, labels)
		armonSink{s}.AddSampleWithLabels(key, 0.001, alabels)
		s.IncrCounter(key, 1)
	}); n != 0 {
		t.Errorf("%v allocations per sample", n)
	}
}

// Keys that are not timings get buckets that fit them.
func TestSinkBucketsFitTheKey(t *testing.T) {
	if b := buckets(strings.Split("raft.leader.lastContact", ".")); b[len(b)-1] != 10000 {
		t.Errorf("lastContact (ms) buckets end at %v", b[len(b)-1])
	}
	if b := buckets([]string{"raft", "commitTime"}); b[0] > .0001 || b[len(b)-1] < 5 {
		t.Errorf("timer buckets %v", b)
	}
}
