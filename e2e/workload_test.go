//go:build e2e

package e2e

// The write loop: one goroutine per session appends messages with unique ids,
// one at a time, and retries each with the SAME id on connection errors,
// client timeouts and documented 503s until it is acknowledged. So a
// session's acknowledged ids have a known order, and the stored messages must
// be exactly that list with seq 1..n (plus, at most, one id whose outcome is
// still open).

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type target struct{ name, url string }

type ackedMsg struct {
	id, content string
	seq         uint64
	at          time.Time
}

type pendingMsg struct {
	id, content string
	attempts    int
}

// session is one session's expected state. Only the loop's goroutine for the
// session writes it; checks read it under mu.
type session struct {
	id      string
	idx     int
	mu      sync.Mutex
	acked   []ackedMsg
	pending *pendingMsg // sent, not yet acknowledged
	next    int
	reqs    int
	lastAck time.Time
	fields  map[string]any // expected fields
	trace   []attempt      // the last attempts, for reports
}

type attempt struct {
	at     time.Time
	took   time.Duration
	node   string
	out    string // class
	detail string // the error body, shortened
}

// traceSince describes the session's attempts from t on.
func (s *session) traceSince(t time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for _, a := range s.trace {
		if !a.at.Before(t) {
			parts = append(parts, fmt.Sprintf("+%v %s %s (%v)", a.at.Sub(t).Round(10*time.Millisecond), a.node, a.out, a.took.Round(time.Millisecond)))
		}
	}
	return strings.Join(parts, "; ")
}

func (s *session) snapshot() ([]ackedMsg, *pendingMsg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ackedMsg(nil), s.acked...), s.pending
}

// firstAckAfter is the time of the session's first acknowledgement after t.
func (s *session) firstAckAfter(t time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.acked) - 1; i >= 0 && s.acked[i].at.After(t); i-- {
		if i == 0 || !s.acked[i-1].at.After(t) {
			return s.acked[i].at, true
		}
	}
	return time.Time{}, false
}

// isolation names a node cut off from the others since a time; requests to it
// started after that are accounted separately.
type isolation struct {
	node         string
	since, until time.Time // until is zero while the partition lasts
}

type workload struct {
	sessions []*session // written through the serving nodes
	probes   []*session // written through the isolated node in phase 3
	mu       sync.Mutex
	phases   []*phaseStats
	cur      *phaseStats
	iso      atomic.Pointer[isolation]
}

func newWorkload(runID string, n, probes int) *workload {
	w := &workload{}
	for i := 0; i < n+probes; i++ {
		s := &session{idx: i}
		if i < n {
			s.id = fmt.Sprintf("%s-s%02d", runID, i)
			w.sessions = append(w.sessions, s)
		} else {
			s.id = fmt.Sprintf("%s-iso%02d", runID, i-n)
			w.probes = append(w.probes, s)
		}
	}
	return w
}

func (w *workload) all() []*session { return append(append([]*session{}, w.sessions...), w.probes...) }

// phase starts a new section of the summary.
func (w *workload) phase(name string) *phaseStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := &phaseStats{name: name, start: time.Now(), errors: map[string]int{}, isoWrites: map[string]int{}, isoReads: map[string]int{}}
	w.endPhase()
	w.phases = append(w.phases, p)
	w.cur = p
	return p
}

// endPhase records the current phase's duration; call it with w.mu held.
func (w *workload) endPhase() {
	if w.cur != nil && w.cur.dur == 0 {
		w.cur.dur = time.Since(w.cur.start)
	}
}

// stat runs f on the current phase's stats under the lock.
func (w *workload) stat(f func(p *phaseStats)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w.cur)
}

// isolatedReq reports whether a request to node, sent at t0 and answered at
// t1, went to the isolated node entirely while it was cut off.
func (w *workload) isolatedReq(node string, t0, t1 time.Time) bool {
	iso := w.iso.Load()
	return iso != nil && iso.node == node && t0.After(iso.since) && (iso.until.IsZero() || t1.Before(iso.until))
}

// group is a set of sessions written through a set of nodes.
type group struct {
	sessions []*session
	targets  []target
	limit    int  // new messages per session; 0 = until the loop stops
	noGaps   bool // leave the sessions out of the unavailability figures
}

// loop is a running write loop.
type loop struct {
	w        *workload
	phase    string
	sessions []*session
	noGaps   map[*session]bool
	pace     time.Duration
	start    time.Time
	stopNew  chan struct{}
	stopOnce sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	retarget atomic.Pointer[[]target]
}

// run starts one writer per session of every group; each waits pace after
// an acknowledged write.
func (w *workload) run(pace time.Duration, groups ...group) *loop {
	ctx, cancel := context.WithCancel(context.Background())
	w.mu.Lock()
	name := w.cur.name
	w.mu.Unlock()
	l := &loop{w: w, phase: name, noGaps: map[*session]bool{}, pace: pace, start: time.Now(), stopNew: make(chan struct{}), ctx: ctx, cancel: cancel}
	for _, g := range groups {
		for _, s := range g.sessions {
			l.sessions = append(l.sessions, s)
			l.noGaps[s] = g.noGaps
			l.wg.Add(1)
			go l.writer(s, g)
		}
	}
	return l
}

func (l *loop) stopping() bool {
	select {
	case <-l.stopNew:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for a loop with limits to finish, then stops it
// as stop does. It returns the number of writes left open.
func (l *loop) wait(timeout time.Duration) (unresolved int) {
	return l.finish(timeout, nil, false)
}

// stop ends the loop: no new messages; each open write is retried, through
// via when given, until acknowledged or timeout passes. It returns the
// number of writes left open.
func (l *loop) stop(timeout time.Duration, via []target) (unresolved int) {
	if via != nil {
		l.retarget.Store(&via)
	}
	l.stopOnce.Do(func() { close(l.stopNew) })
	return l.finish(timeout, via, true)
}

// resolve retries the open writes of sessions through via until each is
// acknowledged or timeout passes, and returns how many stay open.
func (w *workload) resolve(sessions []*session, via []target, timeout time.Duration) int {
	return w.run(0, group{sessions: sessions, targets: via, noGaps: true}).stop(timeout, via)
}

func (l *loop) finish(timeout time.Duration, via []target, gaps bool) int {
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		l.stopOnce.Do(func() { close(l.stopNew) })
		l.cancel()
		<-done
	}
	l.cancel()
	end := time.Now()
	open := 0
	for _, s := range l.sessions {
		s.mu.Lock()
		if s.pending != nil {
			open++
		}
		last := s.lastAck
		s.mu.Unlock()
		if last.Before(l.start) {
			last = l.start
		}
		if gaps && !l.noGaps[s] {
			l.w.gap(s.id, end.Sub(last), false)
		}
	}
	return open
}

func (l *loop) sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-l.ctx.Done():
	case <-l.stopNew:
	}
}

func (l *loop) writer(s *session, g group) {
	defer l.wg.Done()
	sent := 0
	for l.ctx.Err() == nil {
		s.mu.Lock()
		p := s.pending
		if p == nil {
			if l.stopping() || (g.limit > 0 && sent >= g.limit) {
				s.mu.Unlock()
				return
			}
			s.next++
			sent++
			p = &pendingMsg{id: fmt.Sprintf("%s-m%05d", s.id, s.next)}
			p.content = fmt.Sprintf("message %d of %s (%s)", s.next, s.id, l.phase)
			s.pending = p
		}
		targets := g.targets
		if rt := l.retarget.Load(); rt != nil && l.stopping() {
			targets = *rt
		}
		tg := targets[(s.idx+s.reqs)%len(targets)]
		s.reqs++
		s.mu.Unlock()
		if l.w.appendOnce(s, p, tg, l.start, !g.noGaps) {
			l.sleep(l.pace)
		} else {
			l.sleep(time.Duration(80+rand.IntN(80)) * time.Millisecond)
		}
	}
}

// appendOnce sends one attempt of the session's open write and records the
// outcome. It reports whether the write is now acknowledged.
func (w *workload) appendOnce(s *session, p *pendingMsg, tg target, loopStart time.Time, gaps bool) bool {
	p.attempts++
	body, _ := json.Marshal(map[string]string{"id": p.id, "role": "user", "content": p.content})
	t0 := time.Now()
	r := do("POST", tg.url+"/api/chat/session/"+s.id+"/messages", body)
	isolated := w.isolatedReq(tg.name, t0, time.Now())
	s.mu.Lock()
	detail := r.String()
	if len(detail) > 200 {
		detail = detail[:200]
	}
	s.trace = append(s.trace, attempt{at: t0, took: time.Since(t0), node: tg.name, out: r.class(), detail: detail})
	if len(s.trace) > 24 {
		s.trace = s.trace[len(s.trace)-24:]
	}
	s.mu.Unlock()
	if r.err != nil || (r.status != http.StatusCreated && r.status != http.StatusOK) {
		w.stat(func(ps *phaseStats) {
			switch {
			case isolated:
				ps.isoWrites[r.class()]++
				if !r.retryable() {
					ps.fail("isolated %s answered a write to %s unexpectedly: %s", tg.name, s.id, r)
				}
			case r.retryable():
				ps.errors[r.class()]++
			default:
				ps.errors[r.class()]++
				ps.unexpected++
				ps.fail("POST %s (id %s) via %s: unexpected %s", s.id, p.id, tg.name, r)
			}
		})
		return false
	}
	var resp struct {
		Messages []struct {
			Seq     uint64 `json:"seq"`
			ID      string `json:"id"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	now := time.Now()
	s.mu.Lock()
	want := uint64(len(s.acked) + 1)
	var problem string
	switch {
	case json.Unmarshal(r.body, &resp) != nil || len(resp.Messages) != 1:
		problem = fmt.Sprintf("unparseable append response %s", r)
	case resp.Messages[0].ID != p.id || resp.Messages[0].Content != p.content:
		problem = fmt.Sprintf("append of %s answered with message %q %q", p.id, resp.Messages[0].ID, resp.Messages[0].Content)
	case resp.Messages[0].Seq != want:
		problem = fmt.Sprintf("append of %s acknowledged with seq %d, want %d (the previous write is seq %d)", p.id, resp.Messages[0].Seq, want, want-1)
	case r.status == http.StatusOK && p.attempts == 1:
		problem = fmt.Sprintf("append of new id %s answered 200 (already stored) on its first attempt", p.id)
	}
	seq := want
	if len(resp.Messages) == 1 {
		seq = resp.Messages[0].Seq
	}
	last := s.lastAck
	if last.Before(loopStart) {
		last = loopStart
	}
	s.acked = append(s.acked, ackedMsg{id: p.id, content: p.content, seq: seq, at: now})
	s.pending = nil
	s.lastAck = now
	s.mu.Unlock()
	if gaps {
		w.gap(s.id, now.Sub(last), true)
	}
	w.stat(func(ps *phaseStats) {
		ps.acked++
		if r.status == http.StatusOK {
			ps.ackedOnRetry++
		}
		if isolated {
			ps.isoWrites[r.class()]++
		}
		if problem != "" {
			ps.divergent++
			ps.fail("via %s: %s", tg.name, problem)
		}
	})
	return true
}

// gap records how long a session went without an acknowledged write; any
// says whether an ack ended it, which also ends the cluster-wide gap.
func (w *workload) gap(session string, d time.Duration, ack bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.cur
	if d > p.worstGap {
		p.worstGap, p.worstGapSession = d, session
	}
	if ack {
		now := time.Now()
		if !p.lastAny.IsZero() && now.Sub(p.lastAny) > p.anyGap {
			p.anyGap = now.Sub(p.lastAny)
		}
		p.lastAny = now
	}
}

// waitAcked waits until every session has an acknowledged write after t and
// returns the longest time any of them took, with that session's attempts.
func waitAcked(sessions []*session, t time.Time, timeout time.Duration) (time.Duration, string, error) {
	deadline := t.Add(timeout)
	for {
		var worst time.Duration
		var slowest *session
		var missing []string
		for _, s := range sessions {
			at, ok := s.firstAckAfter(t)
			if !ok {
				missing = append(missing, s.id)
				continue
			}
			if d := at.Sub(t); slowest == nil || d > worst {
				worst, slowest = d, s
			}
		}
		if len(missing) == 0 {
			return worst, slowest.id + ": " + slowest.traceSince(t), nil
		}
		if time.Now().After(deadline) {
			return 0, "", fmt.Errorf("%d sessions had no acknowledged write within %v: %v", len(missing), timeout, missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
