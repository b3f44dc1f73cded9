package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/client"
)

// result is what a run measured, merged over all workers.
type result struct {
	elapsed     time.Duration // from the end of the warmup to the last response
	ops         [numOps]*opStats
	open        *openLoopStats // nil in a closed loop
	interrupted bool
	protos      map[string]int64 // measured responses by protocol ("HTTP/1.1", "HTTP/2.0")
	dials       int64            // TCP connections dialed, warmup and --h2c check included
}

// worker owns everything it writes on the hot path — its random source, its
// counters and its histograms — so workers never contend on a lock; run
// merges their stats once they have stopped.
type worker struct {
	id     int
	client *client.Client
	rng    *rand.Rand
	seq    uint64
	stats  [numOps]*opStats
	protos map[string]int64 // measured responses by protocol
	// done and failed feed the progress lines while the run goes on.
	done, failed atomic.Int64
	// Open loop only: measured slots that waited for a free worker or were
	// never sent, and the wait from each slot's due time to its send.
	late, unsent int64
	startDelay   *Histogram
}

// run drives the workload until the duration is over, the request cap is
// reached or SIGINT/SIGTERM arrives (a second signal kills the process).
// In-flight requests are allowed to finish, bounded by --timeout, so the end
// of the run does not show up as a burst of cancelled requests. In a closed
// loop each worker sends its next request as soon as the last is answered;
// with --rate the workers send what the schedule releases (see openloop.go).
func run(cfg *config, cl *clients, stderr io.Writer) result {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()

	content := randomContent(cfg.messageBytes + contentSlack)

	start := time.Now()
	measureStart := start.Add(cfg.warmup)
	var end time.Time // zero: no time limit
	if cfg.duration > 0 {
		end = measureStart.Add(cfg.duration)
	}
	var issued atomic.Int64 // measured requests, for --requests

	// All workers exist before any starts, so the progress goroutine (started
	// first, to tick on time even while a thousand workers spin up) can read
	// their counters.
	workers := make([]*worker, cfg.concurrency)
	for i := range workers {
		workers[i] = &worker{id: i, client: cl.forWorker(i), rng: rand.New(rand.NewPCG(rand.Uint64(), uint64(i))),
			protos: map[string]int64{}, startDelay: NewHistogram()}
		for op := range workers[i].stats {
			workers[i].stats[op] = newOpStats()
		}
	}
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		progress(cfg, stderr, workers, start, measureStart, stopProgress)
	}()

	var wg sync.WaitGroup
	var sched *schedule
	if cfg.rate > 0 {
		sched = newSchedule(cfg, start, measureStart, end)
		wg.Go(func() { sched.run(ctx) })
	}
	for i, w := range workers {
		if sched != nil {
			wg.Go(func() { w.openLoop(ctx, cfg, content, sched) })
			continue
		}
		wg.Go(func() {
			for n := i; ; n++ { // n: round-robin position, offset per worker
				now := time.Now()
				if ctx.Err() != nil || (!end.IsZero() && !now.Before(end)) {
					return
				}
				measured := !now.Before(measureStart)
				if measured && cfg.requests > 0 && issued.Add(1) > cfg.requests {
					return
				}
				o := w.one(cfg, cfg.addrs[n%len(cfg.addrs)], content, measured, time.Time{})
				if cfg.retryAfter && o.retryAfter > 0 {
					w.backOff(ctx, o.retryAfter, end)
				}
			}
		})
	}

	wg.Wait()
	finished := time.Now()
	close(stopProgress)
	<-progressDone

	res := result{interrupted: ctx.Err() != nil, protos: map[string]int64{}, dials: cl.dials.Load()}
	if sched != nil {
		res.open = collectOpenLoop(sched, workers)
	}
	if finished.After(measureStart) {
		res.elapsed = finished.Sub(measureStart)
	}
	for op := range res.ops {
		res.ops[op] = newOpStats()
		for _, w := range workers {
			res.ops[op].merge(w.stats[op])
		}
	}
	for _, w := range workers {
		for p, n := range w.protos {
			res.protos[p] += n
		}
	}
	return res
}

// contentSlack is how far the content window slides, so that consecutive
// messages differ without generating random text per request.
const contentSlack = 64

// one sends one request of a randomly picked op to a random session. Its
// latency runs from due, the slot's due time in an open loop, or from the
// send when due is zero.
func (w *worker) one(cfg *config, base, content string, measured bool, due time.Time) outcome {
	op := cfg.mix.pick(w.rng.IntN(cfg.mix.total))
	session := w.rng.IntN(cfg.sessions)
	w.seq++
	off := int(w.seq % contentSlack)
	req := buildCall(cfg, op, session, w.id, w.seq, content[off:off+cfg.messageBytes])
	routed := ""
	if cfg.routeLeader {
		// Known before the run; asked again only after ForgetLeader
		// below, and then the lookup counts in the request's time.
		routed = w.client.LeaderEndpoint(context.Background(), sessionID(cfg.prefix, session))
		if routed != "" {
			base = routed
		}
	}
	if due.IsZero() {
		due = time.Now()
	}
	o := execute(w.client, base, req, cfg.h2c)
	if routed != "" && o.leaderGone() {
		w.client.ForgetLeader(sessionID(cfg.prefix, session))
	}
	lat := time.Since(due)
	w.done.Add(1)
	ok := o.ok(op)
	if !ok {
		w.failed.Add(1)
	}
	if measured {
		w.stats[op].record(o, op, lat.Microseconds())
		if o.proto != "" {
			w.protos[o.proto]++
		}
	}
	return o
}

// backOff waits as a well-behaved client does after a 429 or 503 with
// Retry-After: between half and all of the time asked for (the jitter keeps
// refused workers from coming back all at once), cut short by the end of
// the run.
func (w *worker) backOff(ctx context.Context, d time.Duration, end time.Time) {
	d = d/2 + time.Duration(w.rng.Int64N(int64(d/2)+1))
	if !end.IsZero() {
		d = min(d, time.Until(end))
	}
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// randomContent returns n random letters: varied enough not to be a
// best-case for compression, and JSON-safe without escaping.
func randomContent(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ "
	var b strings.Builder
	b.Grow(n)
	for range n {
		b.WriteByte(letters[rand.IntN(len(letters))])
	}
	return b.String()
}

// progress prints a line to stderr every --progress until stop is closed:
// elapsed time, requests per second over the last interval, and the
// requests and errors so far, warmup included and marked.
func progress(cfg *config, stderr io.Writer, workers []*worker, start, measureStart time.Time, stop <-chan struct{}) {
	if cfg.progress <= 0 {
		return
	}
	t := time.NewTicker(cfg.progress)
	defer t.Stop()
	var lastDone int64
	last := start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			var done, failed int64
			for _, w := range workers {
				done += w.done.Load()
				failed += w.failed.Load()
			}
			phase := "run"
			if now.Before(measureStart) {
				phase = "warmup"
			}
			rate := float64(done-lastDone) / now.Sub(last).Seconds()
			fmt.Fprintf(stderr, "[%7.1fs %-6s] %9.0f ops/s  %10d requests  %d errors\n",
				now.Sub(start).Seconds(), phase, rate, done, failed)
			lastDone, last = done, now
		}
	}
}
