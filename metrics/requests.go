package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// requestBuckets (seconds) span a stale read from memory (well under a
// millisecond) to a write that waited out a leader election, and the
// change streams and blocking reads that last up to a minute.
var requestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// requestKey is one label combination of the request histogram.
type requestKey struct {
	route, method string
	status        int
	forwarded     bool
}

// requestMetrics is the request histogram with its children cached by
// label values, so that a request pays a map lookup under a read lock
// instead of client_golang's label hashing and variadic slice.
type requestMetrics struct {
	duration *prometheus.HistogramVec
	mu       sync.RWMutex
	children map[requestKey]prometheus.Observer
}

func newRequestMetrics() *requestMetrics {
	return &requestMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP requests by route template, method, status and whether this node served them (local) or proxied them to the shard leader (forwarded), with their latency.",
			Buckets: requestBuckets,
		}, []string{"route", "method", "status", "served"}),
		children: make(map[requestKey]prometheus.Observer),
	}
}

// Route labels of requests that matched no route template.
const (
	// RouteNone is a request refused before routing (authentication) or
	// one for a path no route serves.
	RouteNone = "none"
)

// ObserveRequest records one request: route is the route template that
// served it (echo's c.Path(), "" when none), status the response status,
// forwarded whether the node proxied it to another node. Methods outside
// the standard set are recorded as "other", so that a client cannot make
// the node create series at will.
func (r *Registry) ObserveRequest(route, method string, status int, forwarded bool, d time.Duration) {
	if route == "" {
		route = RouteNone
	}
	k := requestKey{route: route, method: normalMethod(method), status: status, forwarded: forwarded}
	m := r.requests
	m.mu.RLock()
	o, ok := m.children[k]
	m.mu.RUnlock()
	if !ok {
		o = m.child(k)
	}
	o.Observe(d.Seconds())
}

func (m *requestMetrics) child(k requestKey) prometheus.Observer {
	served := "local"
	if k.forwarded {
		served = "forwarded"
	}
	o := m.duration.WithLabelValues(k.route, k.method, strconv.Itoa(k.status), served)
	m.mu.Lock()
	m.children[k] = o
	m.mu.Unlock()
	return o
}

func normalMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}
