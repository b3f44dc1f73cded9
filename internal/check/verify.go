package check

// The end-of-run checks, once every fault is healed and the workload has
// stopped: a linearizable read of every session (which joins the history),
// durability of every acknowledged append, and every replica's copy.

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"
)

// DurabilityResult is what the final reads found.
type DurabilityResult struct {
	Acked      int      `json:"acked"`      // acknowledged appended messages, regular sessions
	Lost       int      `json:"lost"`       // acknowledged messages missing at the end
	Duplicates int      `json:"duplicates"` // messages stored more than once
	Misplaced  int      `json:"misplaced"`  // acknowledged at one seq, stored at another
	Gaps       int      `json:"gaps"`       // sessions whose seqs are not 1..n
	Unread     int      `json:"unread"`     // sessions no final read reached
	Divergent  int      `json:"divergent"`  // sessions on which replicas disagree
	Problems   []string `json:"problems,omitempty"`
}

func (d *DurabilityResult) problem(format string, args ...any) {
	if len(d.Problems) < 50 {
		d.Problems = append(d.Problems, fmt.Sprintf(format, args...))
	}
}

// OK reports whether nothing was lost, duplicated or diverged.
func (d DurabilityResult) OK() bool {
	return d.Lost == 0 && d.Duplicates == 0 && d.Misplaced == 0 && d.Gaps == 0 && d.Unread == 0 && d.Divergent == 0
}

// finalReads reads every session at linearizable, through any node, until
// each answers or timeout passes. Each read is recorded in the history as
// an operation of client clientID.
func finalReads(hist *History, hc *http.Client, nodes []Node, sessions []string, clientID int, timeout time.Duration) map[string]*sessionDoc {
	finals := map[string]*sessionDoc{}
	deadline := time.Now().Add(timeout)
	for _, s := range sessions {
		for attempt := 0; ; attempt++ {
			n := nodes[attempt%len(nodes)]
			op := Op{Client: clientID, Input: Input{Session: s, Kind: KindRead}, Call: hist.Now(), Node: n.Name, Attempts: 1}
			r := do(context.Background(), hc, "GET", sessionURL(n.URL, s)+"?consistency=linearizable", nil, nil)
			op.Return = hist.Now()
			st := r.outcome()
			if st == StatusOK {
				if d, err := parseSession(r.body); err == nil {
					op.Output = d.output()
					hist.add(op)
					finals[s] = d
					break
				}
			}
			if st == StatusNotFound {
				op.Output = Output{Status: StatusNotFound}
				hist.add(op)
				finals[s] = nil
				break
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return finals
}

// checkDurability compares the final state with every acknowledged append.
func checkDurability(ops []Op, finals map[string]*sessionDoc, regular []string) DurabilityResult {
	var d DurabilityResult
	acked := map[string]map[string]uint64{} // session → id → acknowledged seq
	for _, op := range ops {
		if op.Input.Kind == KindAppend && op.Output.Status == StatusOK && op.Client >= 0 {
			m := acked[op.Input.Session]
			if m == nil {
				m = map[string]uint64{}
				acked[op.Input.Session] = m
			}
			for i, id := range op.Input.IDs {
				if prev, ok := m[id]; ok && prev != op.Output.Seqs[i] {
					d.Misplaced++
					d.problem("session %s: message %s acknowledged at seq %d and at seq %d", op.Input.Session, id, prev, op.Output.Seqs[i])
				}
				m[id] = op.Output.Seqs[i]
			}
		}
	}
	for _, s := range regular {
		final, read := finals[s]
		if !read {
			d.Unread++
			d.problem("session %s: no final read succeeded", s)
			continue
		}
		stored := map[string]uint64{}
		if final != nil {
			for i, id := range final.IDs {
				if _, dup := stored[id]; dup {
					d.Duplicates++
					d.problem("session %s: message %s stored twice", s, id)
					continue
				}
				stored[id] = final.Seqs[i]
			}
			for i, seq := range final.Seqs {
				if seq != uint64(i+1) {
					d.Gaps++
					d.problem("session %s: message %d has seq %d", s, i+1, seq)
					break
				}
			}
		}
		for id, seq := range acked[s] {
			d.Acked++
			got, ok := stored[id]
			switch {
			case !ok:
				d.Lost++
				d.problem("session %s: acknowledged message %s (seq %d) is missing", s, id, seq)
			case got != seq:
				d.Misplaced++
				d.problem("session %s: message %s acknowledged at seq %d is stored at seq %d", s, id, seq, got)
			}
		}
	}
	return d
}

// checkReplicas reads every session from every node at consistency=stale
// and compares with the final state, waiting up to timeout for replicas
// that are still catching up. It returns the sessions that never matched.
func checkReplicas(hc *http.Client, nodes []Node, finals map[string]*sessionDoc, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	pending := map[string]bool{}
	for s := range finals {
		pending[s] = true
	}
	lastDiff := map[string]string{}
	for len(pending) > 0 {
		for s := range pending {
			diff := ""
			for _, n := range nodes {
				r := do(context.Background(), hc, "GET", sessionURL(n.URL, s)+"?consistency=stale", nil, nil)
				if d := replicaDiff(r, finals[s]); d != "" {
					diff = n.Name + ": " + d
					break
				}
			}
			if diff == "" {
				delete(pending, s)
			} else {
				lastDiff[s] = diff
			}
		}
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	var out []string
	for s := range pending {
		out = append(out, fmt.Sprintf("session %s: %s", s, lastDiff[s]))
	}
	sort.Strings(out)
	return out
}

// replicaDiff says how a replica's answer differs from the final state, or
// "" when it matches.
func replicaDiff(r reply, want *sessionDoc) string {
	switch r.outcome() {
	case StatusNotFound:
		if want == nil {
			return ""
		}
		return "session missing"
	case StatusOK:
	default:
		return "no answer: " + r.String()
	}
	if want == nil {
		return "session exists, but is deleted on the leader"
	}
	got, err := parseSession(r.body)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	switch {
	case got.Version != want.Version:
		return fmt.Sprintf("version %d, want %d", got.Version, want.Version)
	case DigestIDs(got.IDs) != DigestIDs(want.IDs) || fmt.Sprint(got.Seqs) != fmt.Sprint(want.Seqs):
		return fmt.Sprintf("%d messages differ from the leader's %d", len(got.IDs), len(want.IDs))
	case CanonicalFields(got.Fields) != CanonicalFields(want.Fields):
		return "fields differ"
	}
	return ""
}
