package check

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// Config is one checker run.
type Config struct {
	Target   Target
	Workload WorkloadConfig
	Faults   FaultConfig
	Duration time.Duration // how long the workload runs
	// Warmup is workload time before the first fault, so the report has
	// a baseline; faults stop early enough to heal before Duration ends.
	Warmup time.Duration
	// StartTimeout bounds the wait for a healthy cluster before the run.
	StartTimeout time.Duration
	// CheckTimeout bounds porcupine per session; running out is a failure.
	CheckTimeout time.Duration
	// OutDir receives the history, and on a violation porcupine's
	// visualization; "" writes nothing.
	OutDir string
	Logf   func(format string, args ...any)
	// Credentials are presented on every request: the CA for https://
	// nodes and a bearer token (with the admin scope, for drains).
	Credentials Credentials
	// StreamReaders is how many sessions' change streams are followed and
	// checked at once (DefaultStreamReaders is the command's default); 0
	// follows none.
	StreamReaders int
}

// Run runs the workload and the fault schedule against the target, heals
// everything, and checks the history. The error is for a run that could
// not be carried out; a run that found violations returns a Report whose
// Pass is false.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = 5 * time.Minute
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	if cfg.Faults.Recovery == 0 {
		cfg.Faults.Recovery = 60 * time.Second
	}
	hc := newHTTPClient(cfg.Workload.RequestTimeout, cfg.Credentials)
	nodes := cfg.Target.Nodes()
	if took, err := waitHealthy(hc, nodes, cfg.StartTimeout); err != nil {
		return nil, fmt.Errorf("cluster not healthy at the start: %w", err)
	} else {
		logf("cluster healthy (%d nodes) after %v", len(nodes), took.Round(time.Millisecond))
	}

	hist := NewHistory()
	w := NewWorkload(cfg.Workload, cfg.Credentials, hist, cfg.Target.Nodes)
	sched := &scheduler{
		target: cfg.Target, cfg: cfg.Faults, hist: hist, hc: hc, logf: logf,
		rnd: rand.New(rand.NewPCG(cfg.Faults.Seed, 0x5e55)),
	}
	start := time.Now()
	end := start.Add(cfg.Duration)
	wctx, stopWorkload := context.WithDeadline(ctx, end)
	defer stopWorkload()
	var readers *streamReaders
	if cfg.StreamReaders > 0 {
		readers = newStreamReaders(cfg.StreamReaders, w, hist, cfg.Target.Nodes, cfg.Credentials, logf)
		readers.start(ctx)
	}
	workDone := make(chan struct{})
	go func() { w.Run(wctx); close(workDone) }()

	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		if sleepCtx(wctx, cfg.Warmup) {
			// Reserve time for the longest fault and its recovery, so every
			// fault heals while the workload still runs.
			sched.run(wctx, end, sched.longestHold()+cfg.Faults.Interval+5*time.Second)
		}
	}()
	<-faultsDone
	<-workDone
	stopWorkload()
	elapsed := time.Since(start)
	logf("workload stopped after %v; %d faults injected", elapsed.Round(time.Millisecond), len(sched.records))

	rep := &Report{Target: fmt.Sprintf("%d nodes", len(nodes)), Seed: cfg.Workload.Seed, Duration: elapsed}
	rep.Problems = append(rep.Problems, sched.problems...)
	if _, err := waitHealthy(hc, nodes, cfg.Faults.Recovery); err != nil {
		rep.Problems = append(rep.Problems, "cluster not healthy after the run: "+err.Error())
	}
	if readers != nil {
		// Every fault is healed: the readers get what they are bound to
		// see, then stop.
		t := time.Now()
		readers.finish(StreamCatchUp)
		logf("change-stream readers stopped after %v", time.Since(t).Round(time.Millisecond))
	}

	regular, deletes := w.Sessions()
	all := append(append([]string(nil), regular...), deletes...)
	finals := finalReads(hist, hc, nodes, all, cfg.Workload.Clients, 60*time.Second)
	ops := hist.Ops()
	rep.Durability = checkDurability(ops, finals, regular, deletes)
	if readers != nil {
		rep.Streams = readers.result(finals, ops)
	}
	readable := map[string]*sessionDoc{}
	for s, d := range finals {
		readable[s] = d
	}
	for _, d := range checkReplicas(hc, nodes, readable, 60*time.Second) {
		rep.Durability.AddDivergent(d)
	}
	deleted := map[string]bool{}
	for _, s := range deletes {
		deleted[s] = true
	}
	var notes []Annotation
	for _, f := range sched.records {
		notes = append(notes, Annotation{Tag: f.Kind, Start: f.Start, End: f.Heal, Description: f.Kind + " " + f.Node})
	}
	violationsDir := ""
	if cfg.OutDir != "" {
		violationsDir = filepath.Join(cfg.OutDir, "violations")
	}
	rep.Linearizability = CheckLinearizable(ops, finals, deleted, cfg.CheckTimeout, violationsDir, notes)
	rep.summarize(ops, sched.records, hist, cfg.Workload.Clients, w.Unexpected())

	if cfg.OutDir != "" {
		if err := os.MkdirAll(cfg.OutDir, 0o755); err == nil {
			if f, err := os.Create(filepath.Join(cfg.OutDir, "history.jsonl")); err == nil {
				_ = WriteJSONLines(f, ops)
				f.Close()
			}
		}
	}
	return rep, nil
}
