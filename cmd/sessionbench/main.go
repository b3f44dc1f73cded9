// Command sessionbench is a load generator for sessiond. It drives a weighted
// mix of appends, paged reads and field updates over many sessions from many
// workers, spread round-robin over the given nodes, and reports throughput
// and HdrHistogram-style latency percentiles per operation together with
// errors by HTTP status, by sessiond error code and by transport failure.
//
//	go run ./cmd/sessionbench --addrs 127.0.0.1:8081,127.0.0.1:8082 --duration 30s
package main

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"github.com/sessiond/sessiond/internal/clientauth"
	buildversion "github.com/sessiond/sessiond/internal/version"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
)

// config is the parsed command line.
type config struct {
	addrs        []string
	sessions     int
	prefix       string
	concurrency  int
	duration     time.Duration
	requests     int64
	rate         float64 // open loop: requests/s in total; 0 = closed loop
	backlog      int     // open loop: due requests that may wait for a worker
	mix          mix
	messageBytes int
	consistency  string
	timeout      time.Duration
	warmup       time.Duration
	json         bool
	progress     time.Duration
	h2c          bool // HTTP/2 over cleartext with prior knowledge
	h2cConns     int  // with h2c: connections per node, shared by all workers
	leanHTTP1    bool // HTTP/1.1 over http:// through h1Transport, not net/http's
	retryAfter   bool // closed loop: wait as Retry-After asks after a 429 or 503
	routeLeader  bool // --route leader: each request to its shard's leader
	creds        clientauth.Options
	tls          *tls.Config // from creds; nil for the system's roots
}

// validPrefix keeps session and message ids within sessiond's id alphabet,
// and out of JSON escaping, which request building relies on.
var validPrefix = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,64}$`)

const usageHead = `sessionbench drives load against sessiond nodes and reports throughput and
latency percentiles.

Operations (weights set with --mix; a name left out has weight 0):
  append   POST /api/chat/session/{id}/messages, one message with a unique id
           (so a retry would be deduplicated, never stored twice)
  get      GET  /api/chat/session/{id}/messages?limit=20 — a paged read of the
           first 20 messages, NOT the whole session
  put      PUT  /api/chat/session/{id} with {"lastSearchCriteria":{…},"step":N}
  getfull  GET  /api/chat/session/{id} — the whole session, every message
  state    GET  /api/chat/session/{id}/state — the fields only

Sessions are created by their first append or put, so reads of a session not
yet written get 404; those count as "ok-empty", not as errors. Latency is
measured for successful requests (2xx and ok-empty) up to reading the whole
response body.

Closed loop (default): each worker sends its next request as soon as the last
one is answered, and latency runs from the send. When the server stalls, the
load stalls with it, so the requests that would have arrived meanwhile never
see the stall and the percentiles understate it.

Open loop (--rate N): requests are due at fixed intervals, N per second in
total, whatever the server does, and latency runs from when a request was
due, not from when it could be sent. --concurrency bounds the requests in
flight; while every worker is busy, due requests wait in a backlog of
--backlog requests and count their wait. One due while the backlog is full is
dropped, one still waiting when the run ends is unsent; both are reported,
with the requests that were late (waited 1 ms or more for a free worker).
--requests then caps the requests scheduled, not those sent.

Routing: by default requests go round-robin over --addrs, and a node that
does not lead a session's shard passes the request to the leader (writes as
encoded commands over the raft port; reads are served by any replica).
--route leader sends each request straight to its shard's leader instead,
learned for every session from GET /v1/sessions/{id}/owner and the member
list before the run starts (what the Go client does with RouteToLeader, which
keeps what it learned for 30 s). A routed request that finds no node, or a
node that no longer leads, makes the worker ask again, and that lookup counts
in the request's time.

Protocol: by default every worker keeps an HTTP/1.1 keep-alive connection to
each node. Over http:// the worker writes each request and reads its response
itself (--http1 lean); --http1 net/http sends through Go's http.Transport,
which hands every request to a write goroutine and its response back from a
read goroutine: the same bytes on the wire, about two fifths more CPU in the
load generator, which on a shared machine is CPU the nodes do not get.
https:// always goes through net/http. --h2c speaks HTTP/2 over cleartext
TCP with prior knowledge instead, and all workers share --h2c-conns
connections per node (one by default), many requests in flight on each:
what a client that multiplexes sees. Before the run every node is asked GET
/healthz over HTTP/2; one that does not answer in HTTP/2 ends the run at
once. During the run a response
that is not HTTP/2 counts as the transport error protocol_mismatch. The
report names the protocol, the connections dialed and the responses by
protocol.

Exit status: 0 after a run, 1 if no request succeeded or --h2c found a node
that does not speak HTTP/2 with prior knowledge, 2 on bad flags.

Flags:
`

// parseFlags parses args (without the program name). The error is
// flag.ErrHelp after -h, with the usage already written to stderr.
func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("sessionbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	cfg := &config{}
	addrs := fs.String("addrs", "http://127.0.0.1:8080", "comma-separated base URLs or host:port of sessiond nodes; requests go round-robin over them")
	fs.IntVar(&cfg.sessions, "sessions", 1000, "number of distinct sessions, ids bench-<prefix>-<n>")
	fs.StringVar(&cfg.prefix, "prefix", "", "run prefix in session and message ids (default: random 6 characters, so runs do not collide)")
	fs.IntVar(&cfg.concurrency, "concurrency", 64, "concurrent workers, each with one request in flight")
	fs.DurationVar(&cfg.duration, "duration", 30*time.Second, "measured run time after the warmup; 0 runs until --requests are done")
	fs.Int64Var(&cfg.requests, "requests", 0, "stop after this many measured requests; 0 = no cap")
	fs.Float64Var(&cfg.rate, "rate", 0, "open loop: schedule this many requests per second in total and measure latency from each one's due time; 0 = closed loop")
	fs.IntVar(&cfg.backlog, "backlog", 100_000, "open loop: due requests that may wait for a free worker; beyond that they are dropped and counted")
	mixFlag := fs.String("mix", "append=70,get=20,put=10", "operation weights, op=weight,…; ops: append, get (paged, limit=20), put, getfull (whole session), state")
	fs.IntVar(&cfg.messageBytes, "message-bytes", 256, "content size of each appended message in bytes")
	fs.StringVar(&cfg.consistency, "consistency", "", "?consistency= on reads: linearizable, leader or stale (default: none, the server's linearizable)")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Second, "timeout of each request, including reading the body")
	fs.DurationVar(&cfg.warmup, "warmup", 0, "run this long before measuring; warmup requests are not recorded")
	fs.BoolVar(&cfg.json, "json", false, "write the report as JSON on stdout and nothing else there")
	fs.DurationVar(&cfg.progress, "progress", 5*time.Second, "interval of progress lines on stderr; 0 disables them")
	fs.BoolVar(&cfg.h2c, "h2c", false, "speak HTTP/2 over cleartext with prior knowledge (h2c), all workers sharing --h2c-conns connections per node, instead of HTTP/1.1 with a connection per worker")
	fs.IntVar(&cfg.h2cConns, "h2c-conns", 1, "with --h2c: HTTP/2 connections per node; workers are spread evenly over them")
	http1 := fs.String("http1", "lean", "HTTP/1.1 client for http:// addresses: lean (each request written and its response read on its worker's goroutine, which leaves more of a shared machine to the nodes) or net/http (Go's Transport, with a read and a write goroutine per connection); https:// always uses net/http")
	fs.BoolVar(&cfg.retryAfter, "retry-after", true, "closed loop: after a 429 or 503 with Retry-After, a worker waits half to all of it before its next request, as a well-behaved client does; --retry-after=false sends at once")
	route := fs.String("route", "any", "where requests go: any (round-robin over --addrs; a node that does not lead the session's shard passes the request on) or leader (straight to the leader of the session's shard, learned from the cluster as the Go client's RouteToLeader does)")
	cfg.creds = clientauth.FromEnv(os.Getenv)
	cfg.creds.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if cfg.tls, err = cfg.creds.TLSConfig(); err != nil {
		return nil, err
	}
	h2cConnsSet := false
	fs.Visit(func(f *flag.Flag) { h2cConnsSet = h2cConnsSet || f.Name == "h2c-conns" })
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if cfg.addrs, err = normalizeAddrs(*addrs); err != nil {
		return nil, err
	}
	if cfg.mix, err = parseMix(*mixFlag); err != nil {
		return nil, err
	}
	if cfg.prefix == "" {
		cfg.prefix = randomPrefix()
	}
	switch {
	case !validPrefix.MatchString(cfg.prefix):
		return nil, fmt.Errorf("--prefix %q: want 1-64 characters of A-Z a-z 0-9 . _ : @ -", cfg.prefix)
	case cfg.sessions < 1:
		return nil, fmt.Errorf("--sessions must be at least 1, got %d", cfg.sessions)
	case cfg.concurrency < 1 || cfg.concurrency > 100_000:
		return nil, fmt.Errorf("--concurrency must be 1-100000, got %d", cfg.concurrency)
	case cfg.duration < 0 || cfg.requests < 0:
		return nil, errors.New("--duration and --requests must not be negative")
	case cfg.duration == 0 && cfg.requests == 0:
		return nil, errors.New("--duration 0 needs a --requests cap, or the run would never end")
	case cfg.messageBytes < 0:
		return nil, fmt.Errorf("--message-bytes must not be negative, got %d", cfg.messageBytes)
	case cfg.timeout <= 0:
		return nil, fmt.Errorf("--timeout must be positive, got %v", cfg.timeout)
	case cfg.warmup < 0 || cfg.progress < 0:
		return nil, errors.New("--warmup and --progress must not be negative")
	case !(cfg.rate >= 0 && cfg.rate <= 1_000_000): // also refuses NaN
		return nil, fmt.Errorf("--rate must be 0-1000000 requests/s, got %v", cfg.rate)
	case cfg.backlog < 1 || cfg.backlog > 10_000_000:
		return nil, fmt.Errorf("--backlog must be 1-10000000, got %d", cfg.backlog)
	case h2cConnsSet && !cfg.h2c:
		return nil, errors.New("--h2c-conns needs --h2c")
	case cfg.h2cConns < 1 || cfg.h2cConns > cfg.concurrency:
		return nil, fmt.Errorf("--h2c-conns must be 1-%d (--concurrency), got %d", cfg.concurrency, cfg.h2cConns)
	}
	if cfg.h2c {
		for _, a := range cfg.addrs {
			if strings.HasPrefix(a, "https://") {
				return nil, fmt.Errorf("--h2c is HTTP/2 over cleartext TCP; %s is https (HTTP/2 over TLS is negotiated without --h2c)", a)
			}
		}
	}
	switch *http1 {
	case "lean":
		cfg.leanHTTP1 = !cfg.h2c
		for _, a := range cfg.addrs {
			cfg.leanHTTP1 = cfg.leanHTTP1 && strings.HasPrefix(a, "http://")
		}
	case "net/http":
	default:
		return nil, fmt.Errorf("--http1 must be lean or net/http, got %q", *http1)
	}
	switch *route {
	case "any":
	case "leader":
		cfg.routeLeader = true
	default:
		return nil, fmt.Errorf("--route %q: want any or leader", *route)
	}
	switch cfg.consistency {
	case "", "linearizable", "leader", "stale":
	default:
		return nil, fmt.Errorf("--consistency %q: want linearizable, leader or stale", cfg.consistency)
	}
	return cfg, nil
}

// randomPrefix returns 6 random lowercase letters and digits.
func randomPrefix() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [6]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

// realMain runs the command and returns its exit status; main only exits.
func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "version" || args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintln(stdout, "sessionbench", buildversion.String(""))
		return 0
	}
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "sessionbench:", err)
		return 2
	}
	fmt.Fprintf(stderr, "sessionbench: %s against %s, %d workers, %s, %d sessions (bench-%s-N), mix %s, %s\n",
		describeLength(cfg), strings.Join(cfg.addrs, ","), cfg.concurrency, describeLoop(cfg), cfg.sessions, cfg.prefix, cfg.mix,
		describeProtocol(cfg))
	cl := newClients(cfg)
	defer cl.closeIdle()
	if cfg.h2c {
		if err := cl.checkH2C(cfg); err != nil {
			fmt.Fprintln(stderr, "sessionbench:", err)
			return 1
		}
	}
	if cfg.routeLeader {
		routed := cl.learnLeaders(cfg)
		fmt.Fprintf(stderr, "sessionbench: --route leader: leaders of %d of %d sessions known before the run\n", routed, cfg.sessions)
	}
	res := run(cfg, cl, stderr)
	rep := buildReport(cfg, res)
	if cfg.json {
		err = writeJSON(stdout, rep)
	} else {
		err = writeText(stdout, rep)
	}
	if err != nil {
		fmt.Fprintln(stderr, "sessionbench: writing report:", err)
		return 1
	}
	if rep.Total.OK+rep.Total.OKEmpty == 0 {
		fmt.Fprintln(stderr, "sessionbench: no request succeeded")
		return 1
	}
	return 0
}

func describeLength(cfg *config) string {
	var s string
	if cfg.duration > 0 {
		s = cfg.duration.String()
	}
	if cfg.requests > 0 {
		if s != "" {
			s += " or "
		}
		s += fmt.Sprintf("%d requests", cfg.requests)
	}
	if cfg.warmup > 0 {
		s += " after " + cfg.warmup.String() + " warmup"
	}
	return s
}

// describeProtocol names the protocol and how connections are shared.
func describeProtocol(cfg *config) string {
	if !cfg.h2c {
		client := "net/http"
		if cfg.leanHTTP1 {
			client = "lean client"
		}
		return "HTTP/1.1 (" + client + "), a keep-alive connection per worker and node"
	}
	conns := "1 connection"
	if cfg.h2cConns > 1 {
		conns = fmt.Sprintf("%d connections", cfg.h2cConns)
	}
	return fmt.Sprintf("h2c (HTTP/2 cleartext, prior knowledge), %s per node shared by all workers", conns)
}

func describeLoop(cfg *config) string {
	if cfg.rate > 0 {
		return fmt.Sprintf("open loop at %g requests/s", cfg.rate)
	}
	return "closed loop"
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}
