package check

// Faults on a schedule. A Target knows how to hurt its own kind of cluster
// (processes, containers, in-process nodes); the scheduler decides when,
// holds each fault for a bounded time, always heals it, and brackets it
// with health checks.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	api "github.com/sessiond/sessiond/client"
)

// Target is a cluster the checker can inject faults into. A method that a
// target cannot do returns errors.ErrUnsupported.
type Target interface {
	// Nodes lists every node with the URL clients use.
	Nodes() []Node
	// Kill stops a node at once (SIGKILL); Start starts it again on its data.
	Kill(ctx context.Context, node string) error
	Start(ctx context.Context, node string) error
	// Stop stops a node gracefully (SIGTERM: it drains first) and waits.
	Stop(ctx context.Context, node string) error
	// Pause freezes a node (SIGSTOP, docker pause); Resume thaws it.
	Pause(ctx context.Context, node string) error
	Resume(ctx context.Context, node string) error
	// Isolate cuts a node off from every other node, raft and gossip
	// alike; Heal reconnects it. With raftOnly only the raft port is cut:
	// gossip still says the node is alive.
	Isolate(ctx context.Context, node string, raftOnly bool) error
	Heal(ctx context.Context, node string, raftOnly bool) error
	// Drain asks the node to drain (RequestDrain) and waits until its
	// process has exited, as a drained sessiond does; Start brings it back.
	Drain(ctx context.Context, node string) error
}

// Fault kinds.
const (
	FaultKill       = "kill"
	FaultLeaderKill = "leader-kill"
	FaultRestart    = "restart"
	FaultPause      = "pause"
	FaultPartition  = "partition"
	FaultRaftCut    = "raft-partition" // raft cut, gossip not
	FaultDrain      = "drain"
)

// AllFaults is every kind, in the order a schedule cycles through them.
var AllFaults = []string{FaultKill, FaultPartition, FaultPause, FaultLeaderKill, FaultRestart, FaultDrain, FaultRaftCut}

// FaultConfig is the schedule.
type FaultConfig struct {
	Kinds    []string      // kinds to inject, cycled in a seeded order
	Interval time.Duration // quiet time between one fault's recovery and the next
	// Recovery bounds how long the cluster may take to become healthy again
	// after a fault is healed; longer fails the run.
	Recovery time.Duration
	Seed     uint64
}

// FaultRecord is one injected fault.
type FaultRecord struct {
	Kind  string `json:"kind"`
	Node  string `json:"node"`
	Start int64  `json:"start_ns"` // history time the fault began
	Heal  int64  `json:"heal_ns"`  // history time it was healed
	// Healthy is how long after the heal every node was ready again.
	Healthy time.Duration `json:"healthy_after_heal_ns"`
	// WritesRecovered is how long after the fault began writes were last
	// disturbed: the end of the last 500 ms window in which more than 10% of
	// the writes failed or stayed unknown.
	WritesRecovered time.Duration `json:"writes_recovered_ns"`
	Before          Availability  `json:"before"`
	During          Availability  `json:"during"`
	After           Availability  `json:"after"`
	Err             string        `json:"error,omitempty"`
}

// Availability counts operations invoked in a window.
type Availability struct {
	Ops         int     `json:"ops"`
	OK          int     `json:"ok"`
	SuccessRate float64 `json:"success_rate"`
	PerSecond   float64 `json:"ops_per_second"`
}

// ValidFaults checks a list of fault kinds.
func ValidFaults(kinds []string) error {
	for _, k := range kinds {
		if !slices.Contains(AllFaults, k) {
			return fmt.Errorf("unknown fault %q (known: %s; or none alone, for no fault)", k, strings.Join(AllFaults, ","))
		}
	}
	return nil
}

// scheduler injects faults until its context ends.
type scheduler struct {
	target Target
	cfg    FaultConfig
	hist   *History
	hc     *api.Client
	rnd    *rand.Rand
	logf   func(format string, args ...any)

	records  []FaultRecord
	problems []string
}

// run injects one fault after another until ctx is done or less than
// reserve is left before deadline. The fault in progress is always healed.
func (s *scheduler) run(ctx context.Context, deadline time.Time, reserve time.Duration) {
	if len(s.cfg.Kinds) == 0 {
		return
	}
	order := append([]string(nil), s.cfg.Kinds...)
	s.rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for i := 0; ; i++ {
		if !sleepCtx(ctx, s.cfg.Interval) || time.Until(deadline) < reserve {
			return
		}
		if took, err := waitHealthy(s.hc, s.target.Nodes(), s.cfg.Recovery); err != nil {
			s.problems = append(s.problems, fmt.Sprintf("cluster not healthy before fault %d: %v", i+1, err))
			return
		} else if took > time.Second {
			s.logf("cluster healthy again after %v", took.Round(time.Millisecond))
		}
		kind := order[i%len(order)]
		rec := s.inject(kind)
		s.records = append(s.records, rec)
		if rec.Err != "" {
			s.problems = append(s.problems, fmt.Sprintf("fault %s on %s: %s", rec.Kind, rec.Node, rec.Err))
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// hold is a random duration in [lo, hi].
func (s *scheduler) hold(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rnd.Int64N(int64(hi-lo)+1))
}

// faultPlan is how a kind of fault is done: inject, hold for a random time
// in [holdMin, holdMax] (none when holdMax is 0: the fault lasts as long as
// inject takes), heal.
type faultPlan struct {
	inject, heal     func(context.Context, string) error
	holdMin, holdMax time.Duration
}

func (s *scheduler) plan(kind string) faultPlan {
	t := s.target
	switch kind {
	case FaultKill, FaultLeaderKill:
		return faultPlan{inject: t.Kill, heal: t.Start, holdMin: time.Second, holdMax: 5 * time.Second}
	case FaultRestart:
		return faultPlan{inject: t.Stop, heal: t.Start}
	case FaultPause: // longer than an election timeout
		return faultPlan{inject: t.Pause, heal: t.Resume, holdMin: 2 * time.Second, holdMax: 10 * time.Second}
	case FaultPartition, FaultRaftCut:
		raftOnly := kind == FaultRaftCut
		return faultPlan{
			inject:  func(ctx context.Context, n string) error { return t.Isolate(ctx, n, raftOnly) },
			heal:    func(ctx context.Context, n string) error { return t.Heal(ctx, n, raftOnly) },
			holdMin: 5 * time.Second, holdMax: 15 * time.Second,
		}
	}
	return faultPlan{inject: t.Drain, heal: t.Start} // FaultDrain
}

// longestHold is the longest any scheduled fault is held, at least 5 s for
// faults that last until a node has stopped.
func (s *scheduler) longestHold() time.Duration {
	d := 5 * time.Second
	for _, k := range s.cfg.Kinds {
		d = max(d, s.plan(k).holdMax)
	}
	return d
}

// inject runs one fault from start to heal. Injection and healing use
// their own deadlines, not the run's, so a fault is never left in place.
func (s *scheduler) inject(kind string) FaultRecord {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodes := s.target.Nodes()
	node := nodes[s.rnd.IntN(len(nodes))].Name
	if kind == FaultLeaderKill || kind == FaultPause && s.rnd.IntN(2) == 0 {
		if l := busiestLeader(s.hc, nodes); l != "" {
			node = l
		}
	}
	rec := FaultRecord{Kind: kind, Node: node, Start: s.hist.Now()}
	plan := s.plan(kind)
	err := plan.inject(ctx, node)
	if plan.holdMax > 0 {
		time.Sleep(s.hold(plan.holdMin, plan.holdMax))
	}
	rec.Heal = s.hist.Now()
	healErr := plan.heal(ctx, node)
	s.logf("fault %s on %s: held %v", kind, node, time.Duration(rec.Heal-rec.Start).Round(time.Millisecond))
	if err = errors.Join(err, healErr); err != nil {
		rec.Err = err.Error()
		s.logf("fault %s on %s: %v", kind, node, err)
	}
	took, herr := waitHealthy(s.hc, nodes, s.cfg.Recovery)
	rec.Healthy = took
	if herr != nil {
		rec.Err = strings.TrimPrefix(rec.Err+"; ", "; ") + "not healthy after heal: " + herr.Error()
	}
	return rec
}

// RequestDrain asks, through another node, that node be drained: its
// replicas and leadership move away and it exits. With tokens, the drain
// needs the admin scope.
func RequestDrain(ctx context.Context, creds Credentials, nodes []Node, node string) error {
	hc := newHTTPClient(10*time.Second, creds)
	var errs []error
	for _, via := range nodes {
		if via.Name == node {
			continue
		}
		r := do(ctx, hc, via.URL, api.Call{Method: "POST", Path: "/v1/nodes/" + node + "/drain"})
		if r.err == nil && r.status/100 == 2 {
			return nil
		}
		errs = append(errs, fmt.Errorf("drain %s via %s: %s %s", node, via.Name, r, r.body))
	}
	return errors.Join(errs...)
}

// clusterSummary is the part of /v1/cluster the checker reads.
type clusterSummary struct {
	ShardCount int `json:"shardCount"`
	Summary    struct {
		LeadersPerNode map[string]int `json:"leadersPerNode"`
	} `json:"summary"`
}

func getCluster(hc *api.Client, n Node) (*clusterSummary, error) {
	r := do(context.Background(), hc, n.URL, api.Call{Method: "GET", Path: "/v1/cluster"})
	if r.err != nil || r.status != http.StatusOK {
		return nil, fmt.Errorf("%s /v1/cluster: %s", n.Name, r)
	}
	var c clusterSummary
	if err := json.Unmarshal(r.body, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// busiestLeader is the node that leads the most shards, "" if no node
// could say.
func busiestLeader(hc *api.Client, nodes []Node) string {
	for _, n := range nodes {
		c, err := getCluster(hc, n)
		if err != nil {
			continue
		}
		best, most := "", -1
		for name, count := range c.Summary.LeadersPerNode {
			if count > most || count == most && name < best {
				best, most = name, count
			}
		}
		return best
	}
	return ""
}

// waitHealthy waits until every node answers /readyz and one node sees a
// leader for every shard; it returns how long that took.
func waitHealthy(hc *api.Client, nodes []Node, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	var last error
	for {
		if last = healthy(hc, nodes); last == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("after %v: %w", timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func healthy(hc *api.Client, nodes []Node) error {
	for _, n := range nodes {
		if r := do(context.Background(), hc, n.URL, api.Call{Method: "GET", Path: "/readyz"}); r.err != nil || r.status != http.StatusOK {
			return fmt.Errorf("%s not ready: %s", n.Name, r)
		}
	}
	c, err := getCluster(hc, nodes[0])
	if err != nil {
		return err
	}
	led := 0
	for _, count := range c.Summary.LeadersPerNode {
		led += count
	}
	if led < c.ShardCount {
		return fmt.Errorf("%d of %d shards have a leader", led, c.ShardCount)
	}
	return nil
}
