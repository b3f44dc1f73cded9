//go:build e2e

package e2e

// The phases, in order, against one compose project: what an outsider on
// the host can reach, replication, a killed leader, a network partition, a
// full restart, a fourth node. Every acknowledged write of every phase is
// checked again after each phase.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/cluster"
)

const (
	sessionsN = 50 // sessions written through the serving nodes
	probesN   = 8  // sessions written through the isolated node in phase 3
	pace      = 150 * time.Millisecond
	warmup    = 3 * time.Second // writes before each fault
)

var base = []string{"node1", "node2", "node3"}

type suite struct {
	e      *env
	w      *workload
	fatal  bool            // a phase stopped early; skip the rest
	broken map[string]bool // nodes found unable to route requests
}

func (s *suite) targets(names ...string) []target {
	out := make([]target, len(names))
	for i, n := range names {
		out[i] = target{n, s.e.urls[n]}
	}
	return out
}

// check stops the phase on err, which goes to the summary's failures (and
// from there to the test log).
func (s *suite) check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		s.w.failf("%v", err)
		s.fatal = true
		t.FailNow()
	}
}

// serving lists nodes minus those found unable to route requests.
func (s *suite) serving(nodes []string) []string {
	var out []string
	for _, n := range nodes {
		if !s.broken[n] {
			out = append(out, n)
		}
	}
	return out
}

// settle stops a loop (if any), waits for the replicas to converge and
// checks every acknowledged write on every node.
func (s *suite) settle(t *testing.T, l *loop, nodes []string, via []target) {
	t.Helper()
	if l != nil {
		if open := l.stop(30*time.Second, via); open > 0 {
			s.check(t, fmt.Errorf("%d writes still unacknowledged 30s after the loop stopped (retried through %v)", open, via))
		}
	}
	if _, err := waitFor(30*time.Second, "every node sees every node alive", func() error { return membersAlive(s.e.urls, nodes) }); err != nil {
		if len(s.broken) == 0 {
			s.w.failf("%v", err)
		} else {
			s.w.note("membership still split: %v", err)
		}
	} else {
		s.broken = map[string]bool{}
	}
	took, err := waitConverged(s.e.urls, nodes, 90*time.Second)
	s.check(t, err)
	s.w.note("replicas converged (appliedIndex equal per shard) %v after writes stopped", took.Round(10*time.Millisecond))
	s.w.verify(s.e.urls, nodes, s.serving(nodes), 10*time.Second)
}

func TestCluster(t *testing.T) {
	e := loadEnv(t)
	start := time.Now()
	s := &suite{e: e, broken: map[string]bool{}, w: newWorkload(fmt.Sprintf("e2e%d", start.Unix()%1000000), sessionsN, probesN)}
	defer func() {
		s.w.printSummary(os.Stdout, e.project)
		fmt.Printf("e2e run time: %v\n", time.Since(start).Round(time.Second))
		if t.Failed() {
			e.dumpLogs(t, []string{"node1", "node2", "node3", "node4"}, 25)
		}
	}()
	phases := []struct {
		name string
		run  func(*testing.T)
	}{
		{"0-exposure", s.exposure},
		{"1-replication", s.replication},
		{"2-kill-leader", s.killLeader},
		{"3-partition", s.partition},
		{"4-restart-all", s.restartAll},
		{"5-scale-node4", s.scaleOut},
	}
	for _, ph := range phases {
		s.w.phase(ph.name)
		ok := t.Run(ph.name, func(t *testing.T) {
			defer func() {
				msgs, omitted := s.w.failures()
				for _, m := range msgs {
					t.Error(m)
				}
				if omitted > 0 {
					t.Errorf("… and %d more problems", omitted)
				}
			}()
			ph.run(t)
		})
		if !ok && s.fatal {
			t.Fatalf("phase %s stopped early; later phases skipped", ph.name)
		}
	}
}

// 1: writes through node1; node2 and node3 read the same sessions and name
// the same owners.
func (s *suite) replication(t *testing.T) {
	for _, n := range base {
		_, err := waitFor(60*time.Second, n+" /readyz", func() error {
			if r := do("GET", s.e.urls[n]+"/readyz", nil); r.status != http.StatusOK {
				return fmt.Errorf("%s", r)
			}
			return nil
		})
		s.check(t, err)
	}
	s.check(t, s.e.checkNetwork(s.e.mustID(t, "node1")))
	s.w.note("network %s", s.e.network)

	l := s.w.run(0, group{sessions: s.w.all(), targets: s.targets("node1"), limit: 3})
	if open := l.wait(60 * time.Second); open > 0 {
		s.check(t, fmt.Errorf("%d appends through node1 not acknowledged within 60s", open))
	}
	for _, ss := range s.w.all() {
		url := s.e.urls["node1"] + "/api/chat/session/" + ss.id
		put := fmt.Sprintf(`{"bookingInfo":{"ref":"R%03d","seats":%d},"lastSearchCriteria":{"from":"BER","to":"LIS"}}`, ss.idx, ss.idx%3+1)
		patch := `{"lastSearchCriteria":{"from":null,"dates":"05-03/05-07"}}`
		for _, req := range []struct{ method, body string }{{"PUT", put}, {"PATCH", patch}} {
			if r := do(req.method, url, []byte(req.body)); r.status != http.StatusOK {
				s.w.failf("%s %s via node1: %s", req.method, ss.id, r)
			}
		}
		want := map[string]any{}
		_ = json.Unmarshal([]byte(fmt.Sprintf(`{"bookingInfo":{"ref":"R%03d","seats":%d},"lastSearchCriteria":{"to":"LIS","dates":"05-03/05-07"}}`, ss.idx, ss.idx%3+1)), &want)
		ss.mu.Lock()
		ss.fields = want
		ss.mu.Unlock()
	}

	deadline := time.Now().Add(30 * time.Second)
	for _, ss := range s.w.all() {
		c := &sessionCheck{lost: map[string]bool{}, dups: map[string]bool{}, phantom: map[string]bool{}}
		var bodies [][]byte
		for _, n := range []string{"node2", "node3"} {
			r := read(s.e.urls[n], ss.id, "linearizable", deadline)
			if r.status != http.StatusOK {
				c.problem("%s linearizable read via %s: %s", ss.id, n, r)
				continue
			}
			d, err := parseDoc(r.body)
			if err != nil {
				c.problem("%s via %s: %v", ss.id, n, err)
				continue
			}
			c.check(ss, d, ss.id+" via "+n)
			bodies = append(bodies, r.body)
		}
		if len(bodies) == 2 && !bytes.Equal(bodies[0], bodies[1]) {
			c.problem("DIVERGENCE: %s reads differently via node2 and node3:\n%s\n%s", ss.id, bodies[0], bodies[1])
		}
		owners := map[string]string{}
		for _, n := range base {
			r := do("GET", s.e.urls[n]+"/v1/sessions/"+ss.id+"/owner", nil)
			var o struct {
				Leader   string   `json:"leader"`
				Replicas []string `json:"replicas"`
			}
			if r.status != http.StatusOK || json.Unmarshal(r.body, &o) != nil || o.Leader == "" || len(o.Replicas) != 3 {
				c.problem("%s owner via %s: %s", ss.id, n, r)
			}
			owners[n] = strings.TrimSpace(string(r.body))
		}
		if owners["node1"] != owners["node2"] || owners["node1"] != owners["node3"] {
			c.problem("%s: owners differ: node1 %s, node2 %s, node3 %s", ss.id, owners["node1"], owners["node2"], owners["node3"])
		}
		for _, p := range c.problems {
			s.w.failf("%s", p)
		}
	}
	took, err := waitConverged(s.e.urls, base, 60*time.Second)
	s.check(t, err)
	s.w.note("replicas converged %v after the writes", took.Round(10*time.Millisecond))
	s.w.verify(s.e.urls, base, base, 10*time.Second)
}

// 2: kill -9 the node leading the most shards while writes run; the others
// keep serving; it restarts and catches up; no acknowledged write is lost.
func (s *suite) killLeader(t *testing.T) {
	l := s.w.run(pace, group{sessions: s.w.all(), targets: s.targets(base...)})
	time.Sleep(warmup)
	counts, err := leading(s.e.urls, base)
	s.check(t, err)
	victim := mostLeading(counts, base)
	id := s.e.mustID(t, victim)
	killed := time.Now()
	_, err = docker(30*time.Second, "kill", id)
	s.check(t, err)
	s.w.note("docker kill %s (it led %d shards; leaders %v)", victim, counts[victim], counts)
	worst, slowest, err := waitAcked(s.w.all(), killed, 30*time.Second)
	s.check(t, err)
	s.w.note("every session acknowledged a write again within %v of the kill; slowest %s", worst.Round(10*time.Millisecond), slowest)
	if worst > 15*time.Second {
		s.w.failf("failover too slow: a session waited %v for its first acknowledged write after the kill", worst)
	}
	time.Sleep(warmup) // serve on two nodes for a while
	started := time.Now()
	_, err = docker(30*time.Second, "start", id)
	s.check(t, err)
	s.check(t, s.e.waitHealthy(90*time.Second, victim))
	s.w.note("docker start %s: healthy after %v", victim, time.Since(started).Round(10*time.Millisecond))
	time.Sleep(warmup) // writes with the node back
	s.settle(t, l, base, s.targets(base...))
}

// 4: restart every container (docker compose restart) with writes running;
// every acknowledged write of every phase survives.
func (s *suite) restartAll(t *testing.T) {
	l := s.w.run(pace, group{sessions: s.w.all(), targets: s.targets(base...)})
	time.Sleep(warmup)
	started := time.Now()
	_, err := s.e.composeRun(3*time.Minute, "restart")
	s.check(t, err)
	s.w.note("compose restart took %v", time.Since(started).Round(10*time.Millisecond))
	s.check(t, s.e.waitHealthy(90*time.Second, base...))
	healthy := time.Now()
	s.w.note("all healthy %v after the restart began", healthy.Sub(started).Round(10*time.Millisecond))
	worst, _, err := waitAcked(s.w.all(), healthy, 30*time.Second)
	s.check(t, err)
	s.w.note("every session acknowledged a write within %v of all healthy", worst.Round(10*time.Millisecond))
	s.settle(t, l, base, s.targets(base...))
}

// 5: add node4; it joins, serves and forwards; writes and linearizable reads
// through it agree with the other nodes.
func (s *suite) scaleOut(t *testing.T) {
	started := time.Now()
	_, err := s.e.composeRun(3*time.Minute, "--profile", "scale", "up", "-d", "node4")
	s.check(t, err)
	s.check(t, s.e.waitHealthy(90*time.Second, "node4"))
	all := append(append([]string{}, base...), "node4")
	_, err = waitFor(60*time.Second, "node4 ready and 4 alive members everywhere", func() error {
		if r := do("GET", s.e.urls["node4"]+"/readyz", nil); r.status != http.StatusOK {
			return fmt.Errorf("node4 /readyz: %s", r)
		}
		for _, n := range all {
			v, err := getCluster(s.e.urls[n])
			if err != nil {
				return err
			}
			if alive := aliveMembers(v); len(alive) != 4 {
				return fmt.Errorf("%s sees alive members %v", n, alive)
			}
		}
		return nil
	})
	s.check(t, err)
	s.w.note("node4 ready with 4 alive members %v after compose up", time.Since(started).Round(10*time.Millisecond))

	l := s.w.run(pace/3, group{sessions: s.w.all(), targets: s.targets("node4"), limit: 10})
	if open := l.wait(90 * time.Second); open > 0 {
		s.w.failf("%d appends through node4 not acknowledged within 90s", open)
	}
	forwarded, local := 0, 0
	deadline := time.Now().Add(30 * time.Second)
	for _, ss := range s.w.all() {
		r4 := read(s.e.urls["node4"], ss.id, "linearizable", deadline)
		r1 := read(s.e.urls["node1"], ss.id, "linearizable", deadline)
		if r4.status != http.StatusOK || r1.status != http.StatusOK {
			s.w.failf("%s linearizable reads: via node4 %s; via node1 %s", ss.id, r4, r1)
			continue
		}
		if r4.header.Get("X-Sessiond-Forwarded-By") == "node4" {
			forwarded++
		} else {
			local++
		}
		c := &sessionCheck{lost: map[string]bool{}, dups: map[string]bool{}, phantom: map[string]bool{}}
		if d, err := parseDoc(r4.body); err == nil {
			c.check(ss, d, ss.id+" linearizable via node4")
		}
		if !bytes.Equal(r4.body, r1.body) {
			c.problem("DIVERGENCE: %s reads differently via node4 and node1", ss.id)
		}
		for _, p := range c.problems {
			s.w.failf("%s", p)
		}
	}
	s.w.note("linearizable reads via node4: %d forwarded to another leader, %d served by node4", forwarded, local)
	if forwarded == 0 {
		s.w.failf("node4 forwarded no read: expected most sessions to be led elsewhere")
	}
	// Replicas move onto node4 in the background, towards README's
	// placement (each shard on the 3 nodes of highest rendezvous score).
	// Keep writing through all four nodes while they move.
	v, err := getCluster(s.e.urls["node1"])
	s.check(t, err)
	l = s.w.run(pace, group{sessions: s.w.all(), targets: s.targets(all...)})
	want := func(id uint32) []string { return cluster.Place(id, all, 3) }
	_, off, err := waitPlacement(s.e.urls, all, v.ShardCount, want, 2*time.Minute, 30*time.Second)
	if err != nil {
		l.stop(30*time.Second, s.targets(all...))
		s.check(t, err)
	}
	if len(off) == 0 {
		s.w.note("replicas placed as README's rendezvous rule says %v after compose up node4", time.Since(started).Round(10*time.Millisecond))
	} else {
		// Not one of this suite's pass criteria (no write is at risk), but
		// a rebalance that stops half-way is reported loudly.
		s.w.note("WARNING: rebalancing onto node4 stalled: %v after compose up (no change for 30s) %d shards are not placed as README says: %s",
			time.Since(started).Round(time.Second), len(off), strings.Join(off, "; "))
	}
	s.settle(t, l, all, s.targets(all...))
}
