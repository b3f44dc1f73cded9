package metrics

import (
	"hash/maphash"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	gometrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// sink is the go-metrics sink behind the bridge. go-metrics' own
// Prometheus sink builds a string key and a label map per sample (about
// 4 µs and 5 allocations), and raft reports several samples per committed
// entry, so this one writes into client_golang metrics it built on first
// sight of a key and finds them again by a hash of the key's parts and
// labels: a lock-free map read, no allocation. Timers become histograms,
// which unlike summaries can be aggregated across nodes.
type sink struct {
	// entries is replaced whole under mu when a key is added or expires,
	// so the hot path reads it without locking.
	entries atomic.Pointer[map[uint64]*entry]

	mu       sync.Mutex
	n        int                // entries, valid or not
	series   map[string]*child  // name and label pairs → series
	families map[string]*family // name → its kind and label names

	max    int           // entries at most; samples of further keys are dropped
	expiry time.Duration // a series not updated for this long is removed
	now    func() time.Time

	dropped                      *prometheus.CounterVec
	droppedLimit, droppedInvalid prometheus.Counter
}

// entry is one go-metrics key with its labels as reported.
type entry struct {
	kind   byte
	key    []string
	labels []gometrics.Label
	child  *child // nil for a key that makes no valid series
	next   *entry // another key with the same hash
}

// child is one Prometheus series. Keys that differ only in spelling
// (raft.commitTime, raft.commit_time) share one.
type child struct {
	id      string
	family  *family
	metric  prometheus.Metric
	counter prometheus.Counter
	gauge   prometheus.Gauge
	hist    prometheus.Histogram

	touched  atomic.Bool // updated since the last collection
	lastSeen time.Time   // under sink.mu
	dead     bool        // expired; under sink.mu
}

type family struct {
	kind   byte
	labels []string // sorted label names
	help   string
	series int
}

const (
	kindGauge   = 'g'
	kindCounter = 'c'
	kindSample  = 's'
)

// Reasons a sample is dropped.
const (
	dropLimit   = "series_limit" // the sink holds its maximum of keys
	dropInvalid = "invalid"      // no valid series: a name taken with another type or labels, a bad label
)

func newSink(max int, expiry time.Duration) *sink {
	s := &sink{
		max: max, expiry: expiry, now: time.Now,
		series: map[string]*child{}, families: map[string]*family{},
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "gometrics_dropped_samples_total",
			Help: "Samples from raft's, memberlist's and raft-boltdb's go-metrics that were not exported: series_limit when the bridge holds its maximum of series, invalid when a key makes no valid Prometheus series.",
		}, []string{"reason"}),
	}
	s.droppedLimit = s.dropped.WithLabelValues(dropLimit)
	s.droppedInvalid = s.dropped.WithLabelValues(dropInvalid)
	empty := map[uint64]*entry{}
	s.entries.Store(&empty)
	return s
}

// goLabel is go-metrics' Label, or armon/go-metrics' identical one.
type goLabel interface {
	~struct{ Name, Value string }
}

var seed = maphash.MakeSeed()

// hashKey hashes each part on its own (maphash.String is one call, where
// feeding a maphash.Hash byte by byte cost half the lookup) and mixes the
// sums; a collision only costs a longer chain, as entries are compared.
func hashKey[L goLabel](kind byte, key []string, labels []L) uint64 {
	h := uint64(kind)
	for _, p := range key {
		h = mix(h, maphash.String(seed, p))
	}
	for _, l := range labels {
		gl := gometrics.Label(l)
		h = mix(mix(h^1, maphash.String(seed, gl.Name)), maphash.String(seed, gl.Value))
	}
	return h
}

// mix folds a part's hash into h so that the order of the parts counts.
func mix(h, part uint64) uint64 {
	return bits.RotateLeft64(h*0x9e3779b97f4a7c15, 31) ^ part
}

func matches[L goLabel](e *entry, kind byte, key []string, labels []L) bool {
	if e.kind != kind || !slices.Equal(e.key, key) || len(e.labels) != len(labels) {
		return false
	}
	for i, l := range labels {
		if e.labels[i] != gometrics.Label(l) {
			return false
		}
	}
	return true
}

// lookup returns the series of a key, creating it on first sight, or nil
// when the sample is to be dropped (and counts the drop).
func lookup[L goLabel](s *sink, kind byte, key []string, labels []L) *child {
	h := hashKey(kind, key, labels)
	for e := (*s.entries.Load())[h]; e != nil; e = e.next {
		if matches(e, kind, key, labels) {
			if e.child == nil {
				s.droppedInvalid.Inc()
				return nil
			}
			// Only the first update after a collection writes the flag,
			// so series updated from many cores do not share a written
			// cache line for it.
			if !e.child.touched.Load() {
				e.child.touched.Store(true)
			}
			return e.child
		}
	}
	gl := make([]gometrics.Label, len(labels))
	for i, l := range labels {
		gl[i] = gometrics.Label(l)
	}
	return s.add(h, kind, key, gl)
}

// add is lookup's slow path: the first sample of a key.
func (s *sink) add(h uint64, kind byte, key []string, labels []gometrics.Label) *child {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.entries.Load()
	for e := old[h]; e != nil; e = e.next {
		if matches(e, kind, key, labels) { // added since the caller looked
			if e.child == nil {
				s.droppedInvalid.Inc()
			}
			return e.child
		}
	}
	if s.n >= s.max {
		s.droppedLimit.Inc()
		return nil
	}
	e := &entry{kind: kind, key: slices.Clone(key), labels: labels, next: old[h]}
	e.child = s.newChild(kind, e.key, labels)
	entries := maps.Clone(old)
	entries[h] = e
	s.entries.Store(&entries)
	s.n++
	if e.child == nil {
		// Remembered as invalid so that its next samples take the fast
		// path; it counts towards the maximum and never expires.
		s.droppedInvalid.Inc()
		return nil
	}
	e.child.touched.Store(true) // it may be another key's series
	return e.child
}

// newChild builds the series of a key, or returns nil when it makes none
// that Prometheus accepts. Call with mu held.
func (s *sink) newChild(kind byte, key []string, labels []gometrics.Label) *child {
	name := promName(kind, key)
	constLabels := make(prometheus.Labels, len(labels))
	names := make([]string, 0, len(labels))
	for _, l := range labels {
		n := snakeCase(l.Name)
		if _, dup := constLabels[n]; dup || !validLabelName(n) || kind == kindSample && n == "le" || !utf8.ValidString(l.Value) {
			return nil
		}
		constLabels[n] = l.Value
		names = append(names, n)
	}
	slices.Sort(names)
	// One family has one type and one set of label names, or the scrape
	// fails.
	f := s.families[name]
	if f == nil {
		f = &family{kind: kind, labels: names, help: help(kind, key)}
		s.families[name] = f
	} else if f.kind != kind || !slices.Equal(f.labels, names) {
		return nil
	}
	var id strings.Builder
	id.WriteString(name)
	for _, n := range names {
		id.WriteString("\xff" + n + "\xff" + constLabels[n])
	}
	if c := s.series[id.String()]; c != nil {
		return c
	}
	c := &child{id: id.String(), family: f, lastSeen: s.now()}
	switch kind {
	case kindCounter:
		c.counter = prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: f.help, ConstLabels: constLabels})
		c.metric = c.counter
	case kindGauge:
		c.gauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: f.help, ConstLabels: constLabels})
		c.metric = c.gauge
	default:
		c.hist = prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: f.help, ConstLabels: constLabels, Buckets: buckets(key)})
		c.metric = c.hist
	}
	c.touched.Store(true)
	s.series[c.id] = c
	f.series++
	return c
}

func validLabelName(n string) bool {
	return n != "" && !(n[0] >= '0' && n[0] <= '9') && !strings.HasPrefix(n, "__")
}

func help(kind byte, key []string) string {
	h := "go-metrics " + strings.Join(key, ".")
	if kind == kindSample {
		h += " (timers in seconds)"
	}
	return h
}

// Describe sends nothing: the series appear as raft reports them, so the
// registry takes the sink as an unchecked collector.
func (s *sink) Describe(chan<- *prometheus.Desc) {}

// Collect sends every series and the drop counts, after removing the
// series nobody updated for the expiry (a departed peer's timings).
func (s *sink) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	now := s.now()
	expired := false
	out := make([]prometheus.Metric, 0, len(s.series))
	for id, c := range s.series {
		if c.touched.Swap(false) {
			c.lastSeen = now
		} else if s.expiry > 0 && now.Sub(c.lastSeen) > s.expiry {
			c.dead, expired = true, true
			delete(s.series, id)
			c.family.series--
			continue
		}
		out = append(out, c.metric)
	}
	if expired {
		s.dropExpired()
	}
	s.mu.Unlock()
	for _, m := range out {
		ch <- m
	}
	s.dropped.Collect(ch)
}

// dropExpired rebuilds the entries without those of dead series, and the
// families without those left empty. Call with mu held.
func (s *sink) dropExpired() {
	old := *s.entries.Load()
	entries := make(map[uint64]*entry, len(old))
	s.n = 0
	for h, e := range old {
		var kept *entry
		for ; e != nil; e = e.next {
			if e.child == nil || !e.child.dead {
				kept = &entry{kind: e.kind, key: e.key, labels: e.labels, child: e.child, next: kept}
				s.n++
			}
		}
		if kept != nil {
			entries[h] = kept
		}
	}
	s.entries.Store(&entries)
	for name, f := range s.families {
		if f.series == 0 {
			delete(s.families, name)
		}
	}
}

func (s *sink) SetGauge(key []string, val float32) { s.SetGaugeWithLabels(key, val, nil) }

func (s *sink) SetGaugeWithLabels(key []string, val float32, labels []gometrics.Label) {
	setGauge(s, key, float64(val), labels)
}

func (s *sink) SetPrecisionGauge(key []string, val float64) {
	s.SetPrecisionGaugeWithLabels(key, val, nil)
}

func (s *sink) SetPrecisionGaugeWithLabels(key []string, val float64, labels []gometrics.Label) {
	setGauge(s, key, val, labels)
}

func (s *sink) EmitKey(key []string, val float32) {}

func (s *sink) IncrCounter(key []string, val float32) { s.IncrCounterWithLabels(key, val, nil) }

func (s *sink) IncrCounterWithLabels(key []string, val float32, labels []gometrics.Label) {
	incrCounter(s, key, val, labels)
}

func (s *sink) AddSample(key []string, val float32) { s.AddSampleWithLabels(key, val, nil) }

func (s *sink) AddSampleWithLabels(key []string, val float32, labels []gometrics.Label) {
	addSample(s, key, val, labels)
}

func setGauge[L goLabel](s *sink, key []string, val float64, labels []L) {
	if c := lookup(s, kindGauge, key, labels); c != nil {
		c.gauge.Set(val)
	}
}

func incrCounter[L goLabel](s *sink, key []string, val float32, labels []L) {
	if !(val >= 0) { // a Prometheus counter only goes up; this also refuses NaN
		s.droppedInvalid.Inc()
		return
	}
	if c := lookup(s, kindCounter, key, labels); c != nil {
		c.counter.Add(float64(val))
	}
}

func addSample[L goLabel](s *sink, key []string, val float32, labels []L) {
	if c := lookup(s, kindSample, key, labels); c != nil {
		c.hist.Observe(float64(val))
	}
}
