// Package metrics exposes a node's Prometheus metrics: HTTP requests,
// overload refusals, per-shard raft state, the shared raft log, the raft
// mux, hashicorp/raft's and memberlist's own metrics (bridged from
// go-metrics) and the Go runtime. The rest of sessiond depends on it
// through small interfaces: httpapi reports requests to a Registry, and
// cmd/sessiond hands it a Source of node state that it reads on each
// scrape.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric sessiond defines.
const Namespace = "sessiond"

// Registry holds one node's metrics. Its methods are safe for concurrent
// use and never block on I/O; the request path calls them once per request.
type Registry struct {
	reg      *prometheus.Registry
	requests *requestMetrics
	refusals *prometheus.CounterVec
}

// New returns a registry with the HTTP, refusal, Go runtime and process
// metrics, and the bridge of raft's and memberlist's go-metrics. Add node
// state with RegisterSource.
func New() *Registry {
	r := &Registry{reg: prometheus.NewRegistry(), requests: newRequestMetrics()}
	r.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "refusals_total",
		Help: "Requests this node refused before doing their work: overloaded (an in-flight or stream bound was reached) or rate_limited (the session's write rate).",
	}, []string{"reason"})
	for _, reason := range []string{RefusalOverloaded, RefusalRateLimited} {
		r.refusals.WithLabelValues(reason) // present at 0 from the start
	}
	r.reg.MustRegister(r.requests.duration, r.refusals,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		bridgeCollector())
	return r
}

// Reasons of a refusal.
const (
	RefusalOverloaded  = "overloaded"
	RefusalRateLimited = "rate_limited"
)

// Refused counts one request refused for reason (RefusalOverloaded or
// RefusalRateLimited).
func (r *Registry) Refused(reason string) {
	if reason == RefusalOverloaded || reason == RefusalRateLimited {
		r.refusals.WithLabelValues(reason).Inc()
	}
}

// RegisterSource adds the per-shard and node gauges read from src on every
// scrape. Call it once.
func (r *Registry) RegisterSource(src Source) {
	r.reg.MustRegister(newSourceCollector(src))
}

// Handler serves the registry in the Prometheus text format, the one format
// the OpenAPI document promises. A metric that cannot be
// gathered is left out instead of failing the scrape with 500, so one bad
// collector does not hide every other metric.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Gatherer exposes the registry to tests and tools that read it directly.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }
