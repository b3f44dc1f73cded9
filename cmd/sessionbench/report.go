package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sessiond/sessiond/client"
)

// okEmpty reports a read of a session nobody has written yet: sessions are
// created by their first append or put, so early in a run this is the normal
// answer, not an error. Other 404 codes (a wrong base path: not_found) are.
func (o outcome) okEmpty(op opKind) bool {
	return op.isRead() && o.status == 404 && client.Code(o.code) == client.CodeSessionNotFound
}

// ok reports a successful request: a 2xx, or an ok-empty read.
func (o outcome) ok(op opKind) bool {
	return o.transport == "" && (o.status >= 200 && o.status < 300 || o.okEmpty(op))
}

// leaderGone reports an answer that says the node a request was routed to
// may no longer lead its shard (or is gone): ask the cluster again. An
// overloaded or rate-limited leader is still the leader.
func (o outcome) leaderGone() bool {
	switch {
	case o.transport != "", o.status == http.StatusTemporaryRedirect:
		return true
	case o.status >= 500:
		switch client.Code(o.code) {
		case client.CodeNoLeader, client.CodeNotReady, client.CodeShuttingDown,
			client.CodeShardUnavailable, client.CodeTimeout, client.CodeOutcomeUnknown:
			return true
		}
	}
	return false
}

// opStats counts the outcomes of one op. Latency is recorded for successful
// requests only: a 5s timeout or an instant 503 would otherwise distort the
// percentiles of the work the server actually did; errors are counted apart.
type opStats struct {
	hist                       *Histogram // microseconds
	local, forwarded           *Histogram // hist split by whether the node asked proxied it
	count, ok, okEmpty, errors int64
	statuses                   map[int]int64
	codes, transport           map[string]int64
}

func newOpStats() *opStats {
	return &opStats{hist: NewHistogram(), local: NewHistogram(), forwarded: NewHistogram(), statuses: map[int]int64{}, codes: map[string]int64{}, transport: map[string]int64{}}
}

func (s *opStats) record(o outcome, op opKind, latencyUs int64) {
	s.count++
	switch {
	case o.transport != "":
		s.errors++
		s.transport[o.transport]++
		return
	case o.okEmpty(op):
		s.okEmpty++
	case o.ok(op):
		s.ok++
	default:
		s.errors++
		s.codes[o.code]++
	}
	s.statuses[o.status]++
	if o.ok(op) {
		s.hist.Record(latencyUs)
		if o.forwarded {
			s.forwarded.Record(latencyUs)
		} else {
			s.local.Record(latencyUs)
		}
	}
}

func (s *opStats) merge(o *opStats) {
	s.hist.Merge(o.hist)
	s.local.Merge(o.local)
	s.forwarded.Merge(o.forwarded)
	s.count += o.count
	s.ok += o.ok
	s.okEmpty += o.okEmpty
	s.errors += o.errors
	for k, v := range o.statuses {
		s.statuses[k] += v
	}
	for k, v := range o.codes {
		s.codes[k] += v
	}
	for k, v := range o.transport {
		s.transport[k] += v
	}
}

// Report is the outcome of a run; --json writes it as is.
type Report struct {
	Config         ReportConfig `json:"config"`
	ElapsedSeconds float64      `json:"elapsedSeconds"`
	Interrupted    bool         `json:"interrupted,omitempty"`
	Total          OpReport     `json:"total"`
	// OpenLoop is how well the --rate schedule was kept; absent in a closed loop.
	OpenLoop *OpenLoopReport `json:"openLoop,omitempty"`
	// Routing splits successful requests by whether the node asked served
	// them itself or proxied them over HTTP to the leader (it names itself
	// in X-Sessiond-Forwarded-By). A write that a node with a replica of the
	// shard proposes to the leader over the raft port is served itself.
	Routing         map[string]RouteReport `json:"routing"`
	Operations      map[string]OpReport    `json:"operations"`
	Statuses        map[string]int64       `json:"statuses"`
	ErrorCodes      map[string]int64       `json:"errorCodes"`
	TransportErrors map[string]int64       `json:"transportErrors"`
	// Protocols counts measured responses by the protocol they came in
	// ("HTTP/1.1", "HTTP/2.0"); Connections is the TCP connections the
	// run dialed, warmup and the --h2c check included.
	Protocols   map[string]int64 `json:"protocols"`
	Connections int64            `json:"connections"`
}

// ReportConfig echoes the flags that shape the numbers.
type ReportConfig struct {
	Addrs        []string `json:"addrs"`
	Sessions     int      `json:"sessions"`
	Prefix       string   `json:"prefix"`
	Concurrency  int      `json:"concurrency"`
	Duration     string   `json:"duration"`
	Warmup       string   `json:"warmup"`
	Requests     int64    `json:"requests"`
	Rate         float64  `json:"rate,omitempty"`
	Backlog      int      `json:"backlog,omitempty"`
	Mix          string   `json:"mix"`
	MessageBytes int      `json:"messageBytes"`
	Consistency  string   `json:"consistency,omitempty"`
	Timeout      string   `json:"timeout"`
	// Protocol is "http/1.1" or "h2c"; H2CConns the connections per node
	// with h2c.
	Protocol string `json:"protocol"`
	H2CConns int    `json:"h2cConns,omitempty"`
	// HTTP1Client is, over HTTP/1.1, "lean" (h1Transport) or "net/http".
	HTTP1Client string `json:"http1Client,omitempty"`
	// Route is "any" or "leader" (--route).
	Route string `json:"route"`
}

// OpReport is one op's numbers (or all ops' in Total). OpsPerSec counts
// every completed request; OKPerSec only the successful ones.
type OpReport struct {
	Count           int64            `json:"count"`
	OK              int64            `json:"ok"`
	OKEmpty         int64            `json:"okEmpty"`
	Errors          int64            `json:"errors"`
	OpsPerSec       float64          `json:"opsPerSec"`
	OKPerSec        float64          `json:"okPerSec"`
	LatencyUs       Latency          `json:"latencyUs"`
	Statuses        map[string]int64 `json:"statuses,omitempty"`
	ErrorCodes      map[string]int64 `json:"errorCodes,omitempty"`
	TransportErrors map[string]int64 `json:"transportErrors,omitempty"`
}

// OpenLoopReport accounts for every measured request the schedule made due:
// Due = Sent + Dropped + Unsent, and Sent is Total.Count.
type OpenLoopReport struct {
	Rate    float64 `json:"rate"`    // requests/s asked for
	Due     int64   `json:"due"`     // requests that fell due in the measured run
	Sent    int64   `json:"sent"`    // sent, however late
	Late    int64   `json:"late"`    // waited 1 ms or more in the backlog: no worker was free
	Dropped int64   `json:"dropped"` // never sent: due while the backlog was full
	Unsent  int64   `json:"unsent"`  // never sent: still waiting when the run ended
	// StartDelayUs is the wait from due to sent, part of every latency.
	StartDelayUs Latency `json:"startDelayUs"`
}

// RouteReport is the latency of requests that took one route.
type RouteReport struct {
	Count     int64   `json:"count"`
	LatencyUs Latency `json:"latencyUs"`
}

// Latency holds percentiles of successful requests in microseconds, from
// sending the request (in an open loop: from when it was due) to reading the
// last byte of the response.
type Latency struct {
	Min  int64   `json:"min"`
	Mean float64 `json:"mean"`
	P50  int64   `json:"p50"`
	P90  int64   `json:"p90"`
	P99  int64   `json:"p99"`
	P999 int64   `json:"p99.9"`
	Max  int64   `json:"max"`
}

func buildReport(cfg *config, res result) *Report {
	secs := res.elapsed.Seconds()
	opReport := func(s *opStats, details bool) OpReport {
		r := OpReport{Count: s.count, OK: s.ok, OKEmpty: s.okEmpty, Errors: s.errors}
		if secs > 0 {
			r.OpsPerSec = float64(s.count) / secs
			r.OKPerSec = float64(s.ok+s.okEmpty) / secs
		}
		r.LatencyUs = latencyOf(s.hist)
		if details {
			r.Statuses, r.ErrorCodes, r.TransportErrors = statusKeys(s.statuses), nonEmpty(s.codes), nonEmpty(s.transport)
		}
		return r
	}
	all := newOpStats()
	rep := &Report{
		Config: ReportConfig{Addrs: cfg.addrs, Sessions: cfg.sessions, Prefix: cfg.prefix, Concurrency: cfg.concurrency,
			Duration: cfg.duration.String(), Warmup: cfg.warmup.String(), Requests: cfg.requests, Mix: cfg.mix.String(),
			MessageBytes: cfg.messageBytes, Consistency: cfg.consistency, Timeout: cfg.timeout.String(), Rate: cfg.rate,
			Protocol: "http/1.1", Route: "any"},
		ElapsedSeconds: secs,
		Interrupted:    res.interrupted,
		Operations:     map[string]OpReport{},
	}
	if !cfg.h2c {
		rep.Config.HTTP1Client = "net/http"
		if cfg.leanHTTP1 {
			rep.Config.HTTP1Client = "lean"
		}
	}
	for op, s := range res.ops {
		all.merge(s)
		if cfg.mix.weights[op] > 0 || s.count > 0 {
			rep.Operations[opKind(op).String()] = opReport(s, true)
		}
	}
	rep.Total = opReport(all, false)
	if o := res.open; o != nil {
		rep.Config.Backlog = cfg.backlog
		rep.OpenLoop = &OpenLoopReport{Rate: cfg.rate, Due: o.due, Sent: all.count, Late: o.late,
			Dropped: o.dropped, Unsent: o.unsent, StartDelayUs: latencyOf(o.startDelay)}
	}
	rep.Routing = map[string]RouteReport{
		"local":     {Count: int64(all.local.Count()), LatencyUs: latencyOf(all.local)},
		"forwarded": {Count: int64(all.forwarded.Count()), LatencyUs: latencyOf(all.forwarded)},
	}
	rep.Statuses, rep.ErrorCodes, rep.TransportErrors = statusKeys(all.statuses), all.codes, all.transport
	if cfg.h2c {
		rep.Config.Protocol, rep.Config.H2CConns = "h2c", cfg.h2cConns
	}
	if cfg.routeLeader {
		rep.Config.Route = "leader"
	}
	rep.Protocols, rep.Connections = res.protos, res.dials
	if rep.Protocols == nil {
		rep.Protocols = map[string]int64{}
	}
	return rep
}

func latencyOf(h *Histogram) Latency {
	return Latency{Min: h.Min(), Mean: math.Round(h.Mean()*10) / 10, P50: h.Percentile(50),
		P90: h.Percentile(90), P99: h.Percentile(99), P999: h.Percentile(99.9), Max: h.Max()}
}

func statusKeys(m map[int]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[strconv.Itoa(k)] = v
	}
	return out
}

func nonEmpty(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	return m
}

func writeJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// writeText writes the report for people: a summary, one row per op with
// latency in milliseconds, then every status, error code and transport error.
func writeText(w io.Writer, rep *Report) error {
	var b strings.Builder
	c := rep.Config
	fmt.Fprintf(&b, "sessionbench: %.2fs measured against %s\n", rep.ElapsedSeconds, strings.Join(c.Addrs, ","))
	fmt.Fprintf(&b, "  %d workers, %d sessions (bench-%s-N), mix %s, %d-byte messages, consistency %s, timeout %s, warmup %s\n",
		c.Concurrency, c.Sessions, c.Prefix, c.Mix, c.MessageBytes, orDefault(c.Consistency, "(server default)"), c.Timeout, c.Warmup)
	var protos []string
	for _, p := range slices.Sorted(maps.Keys(rep.Protocols)) {
		protos = append(protos, fmt.Sprintf("%s %d", p, rep.Protocols[p]))
	}
	fmt.Fprintf(&b, "  protocol %s; %d connections dialed; responses by protocol: %s; route %s\n",
		describeProtocol(&config{h2c: c.Protocol == "h2c", h2cConns: c.H2CConns, leanHTTP1: c.HTTP1Client == "lean"}), rep.Connections, orDefault(strings.Join(protos, ", "), "none"), orDefault(c.Route, "any"))
	if rep.Interrupted {
		b.WriteString("  interrupted: the report covers the run up to the signal\n")
	}
	t := rep.Total
	fmt.Fprintf(&b, "\nthroughput: %.1f ops/s (%.1f ok/s); %d requests, %d ok, %d ok-empty reads, %d errors (%.3f%%)\n",
		t.OpsPerSec, t.OKPerSec, t.Count, t.OK, t.OKEmpty, t.Errors, pct(t.Errors, t.Count))
	since := "request sent"
	if o := rep.OpenLoop; o != nil {
		since = "request due"
		d := o.StartDelayUs
		fmt.Fprintf(&b, "open loop at %g requests/s: %d due, %d sent (%d waited 1 ms or more for a worker), %d dropped (backlog of %d full), %d unsent at the end\n",
			o.Rate, o.Due, o.Sent, o.Late, o.Dropped, c.Backlog, o.Unsent)
		fmt.Fprintf(&b, "  wait from due to sent: p50 %s ms  p99 %s ms  max %s ms\n", ms(d.P50), ms(d.P99), ms(d.Max))
	}
	b.WriteString("\n")

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op     \trequests\tops/s\terrors\tok-empty\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	row := func(name string, r OpReport) {
		l := r.LatencyUs
		fmt.Fprintf(tw, "%-7s\t%d\t%.1f\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", name, r.Count, r.OpsPerSec, r.Errors, r.OKEmpty,
			ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max))
	}
	for _, name := range opNames {
		if r, ok := rep.Operations[name]; ok {
			row(name, r)
		}
	}
	row("all", t)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "latency: successful requests (2xx and ok-empty 404 reads), %s to body read, within 0.2%%\n", since)
	for _, route := range []string{"local", "forwarded"} {
		rr := rep.Routing[route]
		fmt.Fprintf(&b, "  %-9s %8d requests  p50 %s ms  p90 %s ms  p99 %s ms\n", route, rr.Count,
			ms(rr.LatencyUs.P50), ms(rr.LatencyUs.P90), ms(rr.LatencyUs.P99))
	}

	section := func(title string, m map[string]int64) {
		fmt.Fprintf(&b, "\n%s:", title)
		if len(m) == 0 {
			b.WriteString(" none\n")
			return
		}
		b.WriteString("\n")
		for _, k := range slices.Sorted(maps.Keys(m)) {
			fmt.Fprintf(&b, "  %-22s %d\n", k, m[k])
		}
	}
	section("responses by HTTP status", rep.Statuses)
	section("errors by code", rep.ErrorCodes)
	section("transport errors", rep.TransportErrors)
	_, err := io.WriteString(w, b.String())
	return err
}

func ms(us int64) string { return strconv.FormatFloat(float64(us)/1000, 'f', 3, 64) }

func pct(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
