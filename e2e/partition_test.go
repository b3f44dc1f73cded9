//go:build e2e

package e2e

// Phase 3, the network partition, and the probes of the isolated node.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// 3: cut one node off the network during the write loop. The other two keep
// serving every session; the isolated node acknowledges nothing and, once
// its read lease has run out, serves no linearizable read; after
// reconnecting it converges.
func (s *suite) partition(t *testing.T) {
	counts, err := leading(s.e.urls, base)
	s.check(t, err)
	victim := mostLeading(counts, base)
	var others []string
	for _, n := range base {
		if n != victim {
			others = append(others, n)
		}
	}
	id, otherID := s.e.mustID(t, victim), s.e.mustID(t, others[0])

	// A second network, shared with nobody, lets the test reach the
	// isolated node while it is cut off from the cluster network.
	probeNet := s.e.project + "_probe"
	_, err = docker(30*time.Second, "network", "create", probeNet)
	s.check(t, err)
	defer docker(30*time.Second, "network", "rm", probeNet)
	_, err = docker(30*time.Second, "network", "connect", probeNet, id)
	s.check(t, err)
	defer docker(30*time.Second, "network", "disconnect", "-f", probeNet, id)
	// The node's certificate names it, not its address on probeNet.
	probeAddr := net.JoinHostPort(containerIP(id, probeNet), "8080")
	s.check(t, reachAs(probeAddr, victim))
	iso := target{victim, "https://" + probeAddr}
	if _, err := waitFor(10*time.Second, "isolated node via "+probeNet, func() error {
		if r := do("GET", iso.url+"/healthz", nil); r.status != http.StatusOK {
			return fmt.Errorf("%s", r)
		}
		return nil
	}); err != nil {
		iso.url = s.e.urls[victim]
		s.w.note("%s not reachable through %s (%v); probing its published port instead", victim, probeNet, err)
	}

	l := s.w.run(pace, group{sessions: s.w.sessions, targets: s.targets(others...)}, group{sessions: s.w.probes, targets: []target{iso}, noGaps: true})
	ctx, cancel := context.WithCancel(context.Background())
	probing := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for i := range 4 { // reads that hang must not starve the probe
			wg.Add(1)
			go func() { defer wg.Done(); s.w.probeReads(ctx, iso, s.w.sessions[i:]) }()
		}
		wg.Wait()
		close(probing)
	}()
	defer func() { cancel(); <-probing }()
	time.Sleep(warmup)

	_, err = docker(30*time.Second, "network", "disconnect", "-f", s.e.network, id)
	s.check(t, err)
	cut := time.Now()
	s.w.iso.Store(&isolation{node: victim, since: cut})
	s.w.note("docker network disconnect %s from %s (it led %d shards)", victim, s.e.network, counts[victim])
	worst, slowest, err := waitAcked(s.w.sessions, cut, 20*time.Second)
	s.check(t, err)
	s.w.note("majority (%s) acknowledged a write for every session within %v of the cut; slowest %s", strings.Join(others, "+"), worst.Round(10*time.Millisecond), slowest)
	if worst > 15*time.Second {
		s.w.failf("majority too slow: a session waited %v for its first acknowledged write after the cut", worst)
	}
	// Keep the partition until the majority leads every shard and the
	// isolated node has stepped down everywhere (or 20s pass).
	_, err = waitFor(20*time.Second, "majority leads every shard, isolated node leads none", func() error {
		c, err := leading(s.e.urls, others)
		if err != nil {
			return err
		}
		if v, err := getCluster(iso.url); err == nil {
			for _, sh := range v.Shards {
				if sh.Local && sh.State == "Leader" {
					return fmt.Errorf("%s still claims to lead shard %d", victim, sh.ID)
				}
			}
		}
		v, err := getCluster(s.e.urls[others[0]])
		if err != nil {
			return err
		}
		if c[others[0]]+c[others[1]] != v.ShardCount {
			return fmt.Errorf("majority leads %v of %d shards", c, v.ShardCount)
		}
		return nil
	})
	s.check(t, err)
	s.w.note("isolated %s led no shard and the majority led every shard %v after the cut", victim, time.Since(cut).Round(10*time.Millisecond))
	if rest := 8*time.Second - time.Since(cut); rest > 0 {
		time.Sleep(rest) // let the isolated node's writes and reads keep failing for a while
	}
	// Each read through the isolated node may wait out the node's own
	// bounds before it is refused: keep the partition until one has been
	// answered, so the check below has something to judge.
	if _, err := waitFor(20*time.Second, "a linearizable read through the isolated node answered", func() error {
		n := 0
		s.w.stat(func(p *phaseStats) {
			for _, c := range p.isoReads {
				n += c
			}
		})
		if n == 0 {
			return errors.New("none yet")
		}
		return nil
	}); err != nil {
		s.w.note("%v", err)
	}

	healing := time.Now()
	s.w.iso.Store(&isolation{node: victim, since: cut, until: healing})
	_, err = docker(30*time.Second, "network", "connect", "--alias", victim, s.e.network, id)
	s.check(t, err)
	_, _ = docker(30*time.Second, "network", "disconnect", "-f", probeNet, id)
	s.w.note("partition lasted %v; reconnected with --alias %s", healing.Sub(cut).Round(10*time.Millisecond), victim)
	_, err = waitFor(30*time.Second, "name resolution after reconnect", func() error {
		if ok, out := resolves(otherID, victim); !ok {
			return fmt.Errorf("%s does not resolve %s: %s", others[0], victim, out)
		}
		if ok, out := resolves(id, others[0]); !ok {
			return fmt.Errorf("%s does not resolve %s: %s", victim, others[0], out)
		}
		return nil
	})
	s.check(t, err)
	_, err = waitFor(30*time.Second, victim+" published port", func() error {
		if r := do("GET", s.e.urls[victim]+"/healthz", nil); r.status != http.StatusOK {
			return fmt.Errorf("%s", r)
		}
		return nil
	})
	s.check(t, err)
	s.check(t, s.e.waitHealthy(90*time.Second, victim))
	s.w.note("%s healthy again %v after reconnecting", victim, time.Since(healing).Round(10*time.Millisecond))
	cancel()
	<-probing
	if open := l.stop(30*time.Second, s.targets(base...)); open > 0 {
		s.check(t, fmt.Errorf("%d writes still unacknowledged 30s after the partition healed", open))
	}
	// Data first: every replica converges and holds every acknowledged
	// write (linearizable reads through the majority).
	took, err := waitConverged(s.e.urls, base, 90*time.Second)
	s.check(t, err)
	s.w.note("replicas converged (appliedIndex equal per shard) %v after writes stopped", took.Round(10*time.Millisecond))
	s.w.verify(s.e.urls, base, others, 10*time.Second)

	s.w.stat(func(p *phaseStats) {
		n := 0
		for _, c := range p.isoReads {
			n += c
		}
		if n == 0 {
			p.fail("no linearizable read reached the isolated node while it was cut off")
		}
	})

	// The reconnected node must rejoin the membership and route requests
	// again: writes and linearizable reads through it, for every session.
	s.w.phase("3b-rejoin")
	took, err = waitFor(60*time.Second, "gossip membership heals after the partition", func() error { return membersAlive(s.e.urls, base) })
	if err != nil {
		s.broken[victim] = true
		s.w.failf("NOT HEALED: %v", err)
		s.w.note("membership still split %v after reconnecting", time.Since(healing).Round(time.Second))
	} else {
		s.w.note("every node saw every node alive again %v after the membership check began", took.Round(10*time.Millisecond))
	}
	l = s.w.run(pace/3, group{sessions: s.w.all(), targets: s.targets(victim), limit: 2, noGaps: true})
	if open := l.wait(30 * time.Second); open > 0 {
		s.broken[victim] = true
		s.w.failf("reconnected %s did not acknowledge writes for %d of %d sessions within 30s; last attempt of one: %s",
			victim, open, len(s.w.all()), lastAttempts(s.w.all()))
		if open := s.w.resolve(s.w.all(), s.targets(others...), 30*time.Second); open > 0 {
			s.check(t, fmt.Errorf("%d writes unacknowledged even through %v", open, others))
		}
	}
	s.settle(t, nil, base, nil)
}

// lastAttempts describes the latest attempt of the first session with an
// open write.
func lastAttempts(sessions []*session) string {
	for _, ss := range sessions {
		ss.mu.Lock()
		open, trace := ss.pending != nil, ss.trace
		ss.mu.Unlock()
		if open && len(trace) > 0 {
			a := trace[len(trace)-1]
			return fmt.Sprintf("%s via %s: %s", ss.id, a.node, a.detail)
		}
	}
	return "none"
}

// readLease is how long after it was cut off a leader may still answer
// linearizable reads from its read lease: half the cluster's heartbeat
// timeout (the default 1s; README, --read-lease). No other leader can be
// elected within it.
const readLease = 500 * time.Millisecond

// probeReads sends linearizable reads to tg until ctx ends; reads that start
// while tg is isolated, once its read lease has run out, must not succeed.
func (w *workload) probeReads(ctx context.Context, tg target, sessions []*session) {
	for i := 0; ctx.Err() == nil; i++ {
		s := sessions[i%len(sessions)]
		t0 := time.Now()
		r := do("GET", tg.url+"/api/chat/session/"+s.id+"?consistency=linearizable", nil)
		if w.isolatedReq(tg.name, t0, time.Now()) {
			iso := w.iso.Load()
			w.stat(func(ps *phaseStats) {
				ps.isoReads[r.class()]++
				if !r.retryable() && t0.After(iso.since.Add(readLease)) {
					ps.fail("isolated %s answered a linearizable read of %s: %.200s", tg.name, s.id, r)
				}
			})
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
