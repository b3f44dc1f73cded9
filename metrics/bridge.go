package metrics

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// hashicorp/raft and memberlist report through go-metrics' process-wide
// global. The bridge installs go-metrics' Prometheus sink as that global,
// once per process, behind a sink that renames: raft's camelCase keys
// become snake_case under the sessiond_ prefix (raft.commitTime →
// sessiond_raft_commit_time) and counters get _total, so the output passes
// promtool's lint. Timers are in seconds. Every registry of the process
// serves the same bridged metrics; raft's are summed over all shards.
var (
	bridgeOnce sync.Once
	bridgeSink *gmprom.PrometheusSink
)

// bridgeExpiry drops a bridged metric nobody updated for this long (a
// departed peer's replication timings), so they do not pile up.
const bridgeExpiry = 10 * time.Minute

// gometricsTimerGranularity makes go-metrics report timings in seconds,
// Prometheus' base unit.
const gometricsTimerGranularity = time.Second

func bridgeCollector() prometheus.Collector {
	bridgeOnce.Do(func() {
		// The sink registers itself; a private registry keeps it out of
		// client_golang's global one.
		sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{
			Expiration: bridgeExpiry, Registerer: prometheus.NewRegistry(), Name: "sessiond_gometrics_bridge"})
		if err != nil {
			panic("metrics: go-metrics sink: " + err.Error()) // only on a duplicate registration
		}
		conf := gometrics.DefaultConfig("")
		conf.EnableHostname = false
		conf.EnableRuntimeMetrics = false // the Go collector reports the runtime
		conf.TimerGranularity = gometricsTimerGranularity
		renaming := &renamingSink{sink: sink}
		if _, err := gometrics.NewGlobal(conf, renaming); err != nil {
			panic("metrics: go-metrics global: " + err.Error())
		}
		if err := installArmon(renaming); err != nil {
			panic("metrics: armon/go-metrics global: " + err.Error())
		}
		bridgeSink = sink
	})
	return bridgeSink
}

// renamingSink rewrites go-metrics keys and label names into Prometheus
// style before handing them to the Prometheus sink. Renamed keys are
// cached, so the hot path (raft reports several timings per log write)
// allocates nothing beyond what the sink does.
type renamingSink struct {
	sink  *gmprom.PrometheusSink
	names sync.Map // uint64 hash of kind and key → *renamed
}

type renamed struct {
	key, out []string
}

var seed = maphash.MakeSeed()

const (
	kindGauge   = 'g'
	kindCounter = 'c'
	kindSample  = 's'
)

func (s *renamingSink) rename(kind byte, key []string) []string {
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteByte(kind)
	for _, p := range key {
		h.WriteString(p)
		h.WriteByte(0)
	}
	sum := h.Sum64()
	if v, ok := s.names.Load(sum); ok {
		r := v.(*renamed)
		if equalKeys(r.key, key) {
			return r.out
		}
		return promKey(kind, key) // a hash collision: correct, just not cached
	}
	out := promKey(kind, key)
	s.names.Store(sum, &renamed{key: append([]string(nil), key...), out: out})
	return out
}

func equalKeys(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// promKey is the Prometheus name of a go-metrics key, as parts the sink
// joins with "_".
func promKey(kind byte, key []string) []string {
	out := []string{Namespace}
	for _, p := range key {
		if p = snakeCase(p); p != "" {
			out = append(out, p)
		}
	}
	if kind == kindCounter && out[len(out)-1] != "total" {
		out = append(out, "total")
	}
	return out
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

// promLabels renames label names; values are kept. It allocates only when
// a name needs changing, which none of raft's or memberlist's do.
func promLabels(labels []gometrics.Label) []gometrics.Label {
	for i, l := range labels {
		if sn := snakeCase(l.Name); sn != l.Name {
			out := append([]gometrics.Label(nil), labels...)
			for j := i; j < len(out); j++ {
				out[j].Name = snakeCase(out[j].Name)
			}
			return out
		}
	}
	return labels
}

// Every report goes through the WithLabels form, so that each kind is
// renamed in one place.

func (s *renamingSink) SetGauge(key []string, val float32) { s.SetGaugeWithLabels(key, val, nil) }

func (s *renamingSink) SetGaugeWithLabels(key []string, val float32, labels []gometrics.Label) {
	s.sink.SetGaugeWithLabels(s.rename(kindGauge, key), val, promLabels(labels))
}

func (s *renamingSink) SetPrecisionGauge(key []string, val float64) {
	s.SetPrecisionGaugeWithLabels(key, val, nil)
}

func (s *renamingSink) SetPrecisionGaugeWithLabels(key []string, val float64, labels []gometrics.Label) {
	s.sink.SetPrecisionGaugeWithLabels(s.rename(kindGauge, key), val, promLabels(labels))
}

func (s *renamingSink) EmitKey(key []string, val float32) {}

func (s *renamingSink) IncrCounter(key []string, val float32) { s.IncrCounterWithLabels(key, val, nil) }

func (s *renamingSink) IncrCounterWithLabels(key []string, val float32, labels []gometrics.Label) {
	s.sink.IncrCounterWithLabels(s.rename(kindCounter, key), val, promLabels(labels))
}

func (s *renamingSink) AddSample(key []string, val float32) { s.AddSampleWithLabels(key, val, nil) }

func (s *renamingSink) AddSampleWithLabels(key []string, val float32, labels []gometrics.Label) {
	s.sink.AddSampleWithLabels(s.rename(kindSample, key), val, promLabels(labels))
}
