package metrics

import (
	"strings"
	"sync"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// hashicorp/raft and memberlist report through go-metrics' process-wide
// global. The bridge installs a sink of ours (sink.go) as that global,
// once per process: raft's camelCase keys become snake_case names under
// the sessiond_ prefix (raft.commitTime → sessiond_raft_commit_time),
// counters get _total and samples become histograms, so the output passes
// promtool's lint. Timers are in seconds. Every registry of the process
// serves the same bridged metrics; raft's are summed over all shards.
var (
	bridgeOnce sync.Once
	bridgeSink *sink
)

// bridgeExpiry drops a bridged metric nobody updated for this long (a
// departed peer's replication timings), so they do not pile up.
const bridgeExpiry = 10 * time.Minute

// bridgeMaxSeries bounds the bridged keys. raft, memberlist and
// raft-boltdb report about a hundred, some once per peer; peer ids in keys
// and labels must not grow a scrape without bound.
const bridgeMaxSeries = 2000

// gometricsTimerGranularity makes go-metrics report timings in seconds,
// Prometheus' base unit.
const gometricsTimerGranularity = time.Second

func bridgeCollector() prometheus.Collector {
	bridgeOnce.Do(func() {
		s := newSink(bridgeMaxSeries, bridgeExpiry)
		conf := gometrics.DefaultConfig("")
		conf.EnableHostname = false
		conf.EnableRuntimeMetrics = false // the Go collector reports the runtime
		conf.TimerGranularity = gometricsTimerGranularity
		if _, err := gometrics.NewGlobal(conf, s); err != nil {
			panic("metrics: go-metrics global: " + err.Error())
		}
		if err := installArmon(s); err != nil {
			panic("metrics: armon/go-metrics global: " + err.Error())
		}
		bridgeSink = s
	})
	return bridgeSink
}

// promName is the Prometheus name of a go-metrics key.
func promName(kind byte, key []string) string {
	var b strings.Builder
	b.WriteString(Namespace)
	last := ""
	for _, p := range key {
		if p = snakeCase(p); p != "" {
			b.WriteByte('_')
			b.WriteString(p)
			last = p
		}
	}
	if kind == kindCounter && last != "total" {
		b.WriteString("_total")
	}
	return b.String()
}

// snakeCase turns "appendEntries" into "append_entries" and anything but
// ASCII letters and digits into "_", so peer ids in keys cannot make an
// invalid name.
func snakeCase(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			if i > 0 && (s[i-1] >= 'a' && s[i-1] <= 'z' || s[i-1] >= '0' && s[i-1] <= '9') {
				b.WriteByte('_')
			}
			b.WriteByte(c + 'a' - 'A')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Histogram buckets. go-metrics has one kind of sample for timers and for
// other distributions, so the keys that are not timings in seconds are
// listed with buckets that fit what they measure.
var (
	// secondsBuckets span a sub-millisecond fsync or RPC decode to a
	// multi-second snapshot.
	secondsBuckets = []float64{.00001, .000025, .00005, .0001, .00025, .0005,
		.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	millisecondsBuckets = scaled(secondsBuckets, 1000)
	countBuckets        = prometheus.ExponentialBuckets(1, 2, 14)  // 1 to 8192
	byteBuckets         = prometheus.ExponentialBuckets(64, 4, 11) // 64 B to 64 MiB
	ratioBuckets        = prometheus.LinearBuckets(.1, .1, 10)     // 0.1 to 1
	rateBuckets         = prometheus.ExponentialBuckets(10, 10, 7) // 10 to 10^7 per second

	keyBuckets = map[string][]float64{
		"raft.leader.lastContact":           millisecondsBuckets,
		"raft.boltdb.txstats.rebalanceTime": millisecondsBuckets,
		"raft.boltdb.txstats.spillTime":     millisecondsBuckets,
		"raft.boltdb.txstats.writeTime":     millisecondsBuckets,
		"raft.fsm.applyBatchNum":            countBuckets,
		"raft.boltdb.logsPerBatch":          countBuckets,
		"memberlist.queue.broadcasts":       countBuckets,
		"raft.boltdb.logSize":               byteBuckets,
		"raft.boltdb.logBatchSize":          byteBuckets,
		"memberlist.size.remote":            byteBuckets,
		"raft.thread.main.saturation":       ratioBuckets,
		"raft.thread.fsm.saturation":        ratioBuckets,
		"raft.boltdb.writeCapacity":         rateBuckets,
	}
)

func scaled(b []float64, f float64) []float64 {
	out := make([]float64, len(b))
	for i, v := range b {
		out[i] = v * f
	}
	return out
}

// buckets are the histogram buckets of a sample key; timings by default.
func buckets(key []string) []float64 {
	if b, ok := keyBuckets[strings.Join(key, ".")]; ok {
		return b
	}
	return secondsBuckets
}
