//go:build e2e

package e2e

// Checks of the stored sessions against what the workload had acknowledged,
// and the per-phase statistics and summary table.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
)

type phaseStats struct {
	name                     string
	start                    time.Time
	dur                      time.Duration
	acked, ackedOnRetry      int
	errors                   map[string]int // retried outcomes by class
	isoWrites, isoReads      map[string]int // outcomes from the isolated node
	unexpected               int
	lost, dups, phantom      int // distinct message ids, found by this phase's checks
	divergent                int // sessions whose replicas or acks disagree
	worstGap                 time.Duration
	worstGapSession          string
	anyGap                   time.Duration
	lastAny                  time.Time
	notes, failures          []string
	failCount, reportedFails int
	omittedReported          int
}

func (p *phaseStats) fail(format string, args ...any) {
	p.failCount++
	if len(p.failures) < 40 {
		p.failures = append(p.failures, fmt.Sprintf(format, args...))
	}
}

func (w *workload) note(format string, args ...any) {
	w.stat(func(p *phaseStats) { p.notes = append(p.notes, fmt.Sprintf(format, args...)) })
}

func (w *workload) failf(format string, args ...any) {
	w.stat(func(p *phaseStats) { p.fail(format, args...) })
}

// failures returns the failures of all phases not returned before, and
// how many were left out of the lists.
func (w *workload) failures() (msgs []string, omitted int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.phases {
		for _, f := range p.failures[p.reportedFails:] {
			msgs = append(msgs, p.name+": "+f)
		}
		p.reportedFails = len(p.failures)
		omitted += p.failCount - len(p.failures) - p.omittedReported
		p.omittedReported = p.failCount - len(p.failures)
	}
	return msgs, omitted
}

// doc is a session as GET /api/chat/session/{id} renders it.
type doc struct {
	raw      []byte
	Version  uint64 `json:"version"`
	Messages []struct {
		Seq     uint64 `json:"seq"`
		ID      string `json:"id"`
		Content string `json:"content"`
	} `json:"messages"`
	fields map[string]any
}

var reserved = map[string]bool{"id": true, "createdAt": true, "updatedAt": true, "lastAccessedAt": true, "version": true, "messages": true}

func parseDoc(b []byte) (*doc, error) {
	d := &doc{raw: b, fields: map[string]any{}}
	if err := json.Unmarshal(b, d); err != nil {
		return nil, err
	}
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k, v := range all {
		if !reserved[k] {
			d.fields[k] = v
		}
	}
	return d, nil
}

// sessionCheck is what one read of a session showed.
type sessionCheck struct {
	lost, dups, phantom map[string]bool
	problems            []string
}

func (c *sessionCheck) problem(format string, args ...any) {
	if len(c.problems) < 6 {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	}
}

// check compares a stored session with the acknowledged writes: every acked
// id exactly once, in acknowledgement order, at the seq it was acknowledged
// with, seq 1..n without gaps, no id that was never sent, the expected fields.
func (c *sessionCheck) check(s *session, d *doc, where string) {
	acked, pending := s.snapshot()
	ackedAt := map[string]int{}
	for i, a := range acked {
		ackedAt[a.id] = i
	}
	count := map[string]int{}
	for i, m := range d.Messages {
		count[m.ID]++
		if m.Seq != uint64(i+1) {
			c.problem("%s: message %d (%s) has seq %d", where, i+1, m.ID, m.Seq)
		}
	}
	for _, a := range acked {
		if count[a.id] == 0 {
			c.lost[a.id] = true
			c.problem("%s: LOST acknowledged message %s (acked as seq %d at %s)", where, a.id, a.seq, a.at.Format("15:04:05.000"))
		}
	}
	for id, n := range count {
		if n > 1 {
			c.dups[id] = true
			c.problem("%s: DUPLICATE message %s stored %d times", where, id, n)
		}
		if _, ok := ackedAt[id]; !ok && (pending == nil || id != pending.id) {
			c.phantom[id] = true
			c.problem("%s: message %s is stored but was never sent or is not open", where, id)
		}
	}
	j := 0
	for _, m := range d.Messages {
		if _, ok := ackedAt[m.ID]; !ok {
			continue // the open write, or a phantom reported above
		}
		switch {
		case j < len(acked) && m.ID == acked[j].id:
			if m.Seq != acked[j].seq || m.Content != acked[j].content {
				c.problem("%s: %s stored at seq %d with %q, acknowledged at seq %d with %q", where, m.ID, m.Seq, m.Content, acked[j].seq, acked[j].content)
			}
			j++
		case j < len(acked):
			c.problem("%s: order differs from acknowledgement order at seq %d: %s stored, %s expected", where, m.Seq, m.ID, acked[j].id)
			j = ackedAt[m.ID] + 1
		}
	}
	s.mu.Lock()
	want := s.fields
	s.mu.Unlock()
	if want != nil && !reflect.DeepEqual(d.fields, want) {
		c.problem("%s: fields %v, want %v", where, d.fields, want)
	}
}

// read GETs a session, retrying documented 503s and connection errors until
// the deadline.
func read(base, id, consistency string, deadline time.Time) result {
	for {
		r := do("GET", base+"/api/chat/session/"+id+"?consistency="+consistency, nil)
		if !r.retryable() || time.Now().After(deadline) {
			return r
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// verify reads every session with consistency=stale from each node and
// linearizably through one of linNodes, and checks each read against the
// acknowledged writes and all reads against each other (byte for byte).
// Run it after the replicas have converged and no write is in flight.
func (w *workload) verify(urls map[string]string, nodes, linNodes []string, timeout time.Duration) {
	sessions := w.all()
	var mu sync.Mutex
	lost, dups, phantom := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var divergent int
	var problems []string
	work := make(chan *session)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				c := w.verifySession(s, urls, nodes, linNodes, timeout)
				mu.Lock()
				for id := range c.lost {
					lost[id] = true
				}
				for id := range c.dups {
					dups[id] = true
				}
				for id := range c.phantom {
					phantom[id] = true
				}
				if len(c.problems) > 0 {
					divergent++
					problems = append(problems, c.problems...)
				}
				mu.Unlock()
			}
		}()
	}
	for _, s := range sessions {
		work <- s
	}
	close(work)
	wg.Wait()
	sort.Strings(problems)
	w.stat(func(p *phaseStats) {
		p.lost += len(lost)
		p.dups += len(dups)
		p.phantom += len(phantom)
		p.divergent += divergent
		for _, pr := range problems {
			p.fail("%s", pr)
		}
	})
}

func (w *workload) verifySession(s *session, urls map[string]string, nodes, linNodes []string, timeout time.Duration) *sessionCheck {
	deadline := time.Now().Add(timeout)
	for {
		c := &sessionCheck{lost: map[string]bool{}, dups: map[string]bool{}, phantom: map[string]bool{}}
		acked, pending := s.snapshot()
		lin := linNodes[s.idx%len(linNodes)]
		reads := []struct{ node, consistency string }{{lin, "linearizable"}}
		for _, n := range nodes {
			reads = append(reads, struct{ node, consistency string }{n, "stale"})
		}
		var first *doc
		var firstWhere string
		for _, rd := range reads {
			where := fmt.Sprintf("%s %s read via %s", s.id, rd.consistency, rd.node)
			r := read(urls[rd.node], s.id, rd.consistency, deadline)
			if r.status == http.StatusNotFound && r.code == "session_not_found" && len(acked) == 0 && pending == nil {
				continue // never written
			}
			if r.err != nil || r.status != http.StatusOK {
				c.problem("%s: %s", where, r)
				continue
			}
			d, err := parseDoc(r.body)
			if err != nil {
				c.problem("%s: bad body: %v", where, err)
				continue
			}
			c.check(s, d, where)
			if first == nil {
				first, firstWhere = d, where
			} else if !bytes.Equal(first.raw, d.raw) {
				c.problem("DIVERGENCE: %s (version %d, %d messages) differs from %s (version %d, %d messages)",
					where, d.Version, len(d.Messages), firstWhere, first.Version, len(first.Messages))
			}
		}
		if len(c.problems) == 0 || time.Now().After(deadline) {
			return c
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// printSummary writes the table of all phases.
func (w *workload) printSummary(out io.Writer, project string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.endPhase()
	dash := func(d time.Duration) string {
		if d == 0 {
			return "-"
		}
		return d.Round(10 * time.Millisecond).String()
	}
	fmt.Fprintf(out, "\n==== sessiond e2e summary (compose project %s) ====\n", project)
	fmt.Fprintf(out, "%-16s %7s %6s %8s %5s %4s %7s %7s %6s %18s %14s\n",
		"phase", "time", "acked", "on-retry", "lost", "dup", "phantom", "diverg", "unexp", "worst-session-gap", "no-ack-window")
	total := phaseStats{}
	for _, p := range w.phases {
		fmt.Fprintf(out, "%-16s %7s %6d %8d %5d %4d %7d %7d %6d %18s %14s\n",
			p.name, dash(p.dur), p.acked, p.ackedOnRetry, p.lost, p.dups, p.phantom, p.divergent, p.unexpected, dash(p.worstGap), dash(p.anyGap))
		total.acked += p.acked
		total.ackedOnRetry += p.ackedOnRetry
		total.failCount += p.failCount
	}
	fmt.Fprintf(out, "%-16s %7s %6d %8d\n", "total", "", total.acked, total.ackedOnRetry)
	fmt.Fprintln(out, "\nworst-session-gap: longest time one session went without an acknowledged write while the loop ran;")
	fmt.Fprintln(out, "no-ack-window: longest time with no acknowledged write at all; on-retry: acks answered 200 (the first attempt had been stored).")
	fmt.Fprintln(out, "\nretried outcomes by status/code (each retried with the same message id):")
	for _, p := range w.phases {
		fmt.Fprintf(out, "  %-16s %s\n", p.name, classes(p.errors))
	}
	for _, p := range w.phases {
		if len(p.isoWrites)+len(p.isoReads) > 0 {
			fmt.Fprintf(out, "  %-16s isolated node, writes: %s\n", p.name, classes(p.isoWrites))
			fmt.Fprintf(out, "  %-16s isolated node, linearizable reads: %s\n", p.name, classes(p.isoReads))
		}
	}
	fmt.Fprintln(out, "\nnotes:")
	for _, p := range w.phases {
		for _, n := range p.notes {
			fmt.Fprintf(out, "  %-16s %s\n", p.name, n)
		}
	}
	if total.failCount == 0 {
		fmt.Fprintln(out, "\nRESULT: PASS")
		return
	}
	fmt.Fprintf(out, "\nRESULT: FAIL (%d problems)\n", total.failCount)
	for _, p := range w.phases {
		for _, f := range p.failures {
			fmt.Fprintf(out, "  %-16s %s\n", p.name, f)
		}
	}
}

func classes(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	for i, k := range ks {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}
