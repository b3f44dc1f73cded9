package check

// The end-of-run checks, once every fault is healed and the workload has
// stopped: a linearizable read of every session (which joins the history),
// durability of every acknowledged append, and every replica's copy.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	api "github.com/sessiond/sessiond/client"
)

// maxExamples is how many examples of each kind of problem a report keeps.
const maxExamples = 10

// Examples keeps the first maxExamples examples of each kind of problem
// (the keys are the report's count names: lost, duplicates, …). Kinds are
// kept apart so that a flood of one kind cannot crowd the others out.
type Examples map[string][]string

func (e *Examples) add(kind, format string, args ...any) {
	if *e == nil {
		*e = Examples{}
	}
	if len((*e)[kind]) < maxExamples {
		(*e)[kind] = append((*e)[kind], fmt.Sprintf(format, args...))
	}
}

// merge adds the examples of o, still at most maxExamples of a kind.
func (e *Examples) merge(o Examples) {
	for kind, list := range o {
		for _, x := range list {
			e.add(kind, "%s", x)
		}
	}
}

// DurabilityResult is what the final reads found.
type DurabilityResult struct {
	Acked      int `json:"acked"`      // acknowledged appended messages, regular sessions
	Lost       int `json:"lost"`       // acknowledged messages missing at the end
	Duplicates int `json:"duplicates"` // messages stored more than once
	Misplaced  int `json:"misplaced"`  // acknowledged at one seq, stored at another
	Gaps       int `json:"gaps"`       // sessions whose seqs are not 1..n
	Unread     int `json:"unread"`     // sessions no final read reached
	Divergent  int `json:"divergent"`  // sessions on which replicas disagree
	// Sessions the workload deletes: their messages are not in the final
	// state, so each acknowledged one is looked for in every read of its
	// session that began after the acknowledgement and before a delete
	// could have taken effect.
	DeletedAcked     int      `json:"deleted_acked"`      // acknowledged messages, deleted sessions
	LostBeforeDelete int      `json:"lost_before_delete"` // missing from such a read
	Examples         Examples `json:"examples,omitempty"`
}

// OK reports whether nothing was lost, duplicated or diverged.
func (d DurabilityResult) OK() bool {
	return d.Lost == 0 && d.Duplicates == 0 && d.Misplaced == 0 && d.Gaps == 0 && d.Unread == 0 &&
		d.Divergent == 0 && d.LostBeforeDelete == 0
}

// AddDivergent records a session on which a replica disagrees with the
// final state, as checkReplicas describes it.
func (d *DurabilityResult) AddDivergent(diff string) {
	d.Divergent++
	d.Examples.add("divergent", "%s", diff)
}

// finalReads reads every session at linearizable, through any node, until
// each answers or timeout passes. Each read is recorded in the history as
// an operation of client clientID, with the message ids it returned; an
// attempt that got no answer is recorded too, as failed, so the saved
// history shows how long the final reads took to get through.
func finalReads(hist *History, hc *api.Client, nodes []Node, sessions []string, clientID int, timeout time.Duration) map[string]*sessionDoc {
	finals := map[string]*sessionDoc{}
	deadline := time.Now().Add(timeout)
	for _, s := range sessions {
		for attempt := 0; ; attempt++ {
			n := nodes[attempt%len(nodes)]
			op := Op{Client: clientID, Input: Input{Session: s, Kind: KindRead}, Call: hist.Now(), Node: n.Name, Attempts: 1}
			r := do(context.Background(), hc, n.URL, api.Call{Method: "GET", Path: sessionPath(s) + "?consistency=linearizable"})
			op.Return = hist.Now()
			st := r.outcome()
			if st == StatusOK {
				d, err := parseSession(r.body)
				if err == nil {
					op.Output = d.output()
					op.Messages = d.IDs
					hist.add(op)
					finals[s] = d
					break
				}
				r.err = fmt.Errorf("unreadable session: %w", err)
			}
			if st == StatusNotFound {
				op.Output = Output{Status: StatusNotFound}
				hist.add(op)
				finals[s] = nil
				break
			}
			op.Output = Output{Status: StatusFailed}
			op.Detail = fmt.Sprintf("%s from %s", r, n.Name)
			hist.add(op)
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return finals
}

// checkDurability compares the final state of the regular sessions with
// every acknowledged append, and checks the appends to the sessions the
// workload deletes against the reads of those sessions.
func checkDurability(ops []Op, finals map[string]*sessionDoc, regular, deletes []string) DurabilityResult {
	var d DurabilityResult
	type ackedMsg struct {
		id  string
		seq uint64
	}
	acked := map[string][]ackedMsg{} // session → acknowledged messages, in history order
	ackedSeq := map[string]uint64{}  // session + "\x00" + id → acknowledged seq
	for _, op := range ops {
		if op.Input.Kind == KindAppend && op.Output.Status == StatusOK && op.Client >= 0 {
			s := op.Input.Session
			for i, id := range op.Input.IDs {
				key := s + "\x00" + id
				if prev, ok := ackedSeq[key]; ok {
					if prev != op.Output.Seqs[i] {
						d.Misplaced++
						d.Examples.add("misplaced", "session %s: message %s acknowledged at seq %d and at seq %d", s, id, prev, op.Output.Seqs[i])
					}
					continue
				}
				ackedSeq[key] = op.Output.Seqs[i]
				acked[s] = append(acked[s], ackedMsg{id, op.Output.Seqs[i]})
			}
		}
	}
	// The last read of each session that got no answer says why a final
	// read never succeeded.
	lastFailure := map[string]Op{}
	for _, op := range ops {
		if op.Input.Kind == KindRead && op.Output.Status == StatusFailed && op.Call >= lastFailure[op.Input.Session].Call {
			lastFailure[op.Input.Session] = op
		}
	}
	for _, s := range regular {
		final, read := finals[s]
		if !read {
			d.Unread++
			why := ""
			if op, ok := lastFailure[s]; ok && op.Detail != "" {
				why = " (the last attempt: " + op.Detail + ")"
			}
			d.Examples.add("unread", "session %s: no final read succeeded%s", s, why)
			continue
		}
		stored := map[string]uint64{}
		if final != nil {
			for i, id := range final.IDs {
				if _, dup := stored[id]; dup {
					d.Duplicates++
					d.Examples.add("duplicates", "session %s: message %s stored twice", s, id)
					continue
				}
				stored[id] = final.Seqs[i]
			}
			for i, seq := range final.Seqs {
				if seq != uint64(i+1) {
					d.Gaps++
					d.Examples.add("gaps", "session %s: message %d has seq %d", s, i+1, seq)
					break
				}
			}
		}
		for _, m := range acked[s] {
			d.Acked++
			got, ok := stored[m.id]
			switch {
			case !ok:
				d.Lost++
				d.Examples.add("lost", "session %s: acknowledged message %s (seq %d) is missing", s, m.id, m.seq)
			case got != m.seq:
				d.Misplaced++
				d.Examples.add("misplaced", "session %s: message %s acknowledged at seq %d is stored at seq %d", s, m.id, m.seq, got)
			}
		}
	}
	checkDeletedSessions(&d, ops, deletes)
	return d
}

// checkDeletedSessions checks the appends to sessions that are deleted
// during the run. The final state says nothing about them (a delete
// removes them), so each acknowledged message must instead be at its seq in
// every whole-session read that began after it was acknowledged, unless a
// delete could have taken effect in between: a delete that was not refused
// and overlaps the time from the append's call to the read's return. A
// message that such a read does not show is counted as lost before its
// delete, once.
func checkDeletedSessions(d *DurabilityResult, ops []Op, deletes []string) {
	type sessionOps struct{ appends, reads, deletes []Op }
	by := map[string]*sessionOps{}
	for _, s := range deletes {
		by[s] = &sessionOps{}
	}
	for _, op := range ops {
		so := by[op.Input.Session]
		if so == nil {
			continue
		}
		switch st := op.Output.Status; {
		case op.Input.Kind == KindAppend && st == StatusOK && op.Client >= 0 && len(op.Output.Seqs) == len(op.Input.IDs):
			so.appends = append(so.appends, op)
		case op.Input.Kind == KindRead && (st == StatusOK || st == StatusNotFound):
			so.reads = append(so.reads, op)
		case op.Input.Kind == KindDelete && (st == StatusOK || st == StatusUnknown):
			if st == StatusUnknown {
				op.Return = Open // it may take effect at any time after its call
			}
			so.deletes = append(so.deletes, op)
		}
	}
	for _, s := range deletes {
		so := by[s]
		sort.Slice(so.reads, func(i, j int) bool { return so.reads[i].Call < so.reads[j].Call })
		for _, a := range so.appends {
			for i, id := range a.Input.IDs {
				d.DeletedAcked++
				seq := a.Output.Seqs[i]
				for _, r := range so.reads {
					if r.Call <= a.Return || deletedBetween(so.deletes, a, r) {
						continue
					}
					if !readShows(r, id, seq) {
						d.LostBeforeDelete++
						d.Examples.add("lost_before_delete", "session %s: message %s acknowledged at seq %d at %v is not in a read at %v (%s), and no delete came between",
							s, id, seq, time.Duration(a.Return).Round(time.Millisecond), time.Duration(r.Call).Round(time.Millisecond), describeRead(r))
						break
					}
				}
			}
		}
	}
}

// deletedBetween reports whether one of dels may have taken effect after
// the append a and before the read r.
func deletedBetween(dels []Op, a, r Op) bool {
	for _, del := range dels {
		if del.Call < r.Return && del.Return > a.Call {
			return true
		}
	}
	return false
}

// readShows reports whether the read r shows message id at seq. Reads
// record their message ids for the sessions that are deleted; a read
// without them (an older history) shows at least its count of messages,
// and seqs are 1..n.
func readShows(r Op, id string, seq uint64) bool {
	switch {
	case r.Output.Status != StatusOK:
		return false
	case r.Messages != nil:
		return seq >= 1 && seq <= uint64(len(r.Messages)) && r.Messages[seq-1] == id
	}
	return uint64(r.Output.Count) >= seq
}

func describeRead(r Op) string {
	if r.Output.Status != StatusOK {
		return r.Output.Status.String()
	}
	return fmt.Sprintf("%d messages, v%d", r.Output.Count, r.Output.Version)
}

// checkRetriedVersions checks the version a retried append answers. If an
// earlier attempt took effect, the retry gets the idempotent answer: the
// stored messages and the session's version at the retry, which is not the
// version the append created but is not older than it either. That
// version is a raft index above every version the session had before the
// append's first attempt was sent, so the answer must be greater than
// every version an operation on the session returned before that. (An
// append of ids that another operation also appends, a deliberate
// re-append, may have created nothing: its answer need only be as large.)
func checkRetriedVersions(ops []Op) (int, Examples) {
	bySession := map[string][]Op{}
	for _, op := range ops {
		if op.Output.Status != StatusFailed {
			bySession[op.Input.Session] = append(bySession[op.Input.Session], op)
		}
	}
	sessions := make([]string, 0, len(bySession))
	for s := range bySession {
		sessions = append(sessions, s)
	}
	sort.Strings(sessions)
	var (
		n  int
		ex Examples
	)
	for _, s := range sessions {
		list := bySession[s]
		idUses := map[string]int{}
		for _, op := range list {
			for _, id := range op.Input.IDs {
				idUses[id]++
			}
		}
		// The versions the session was seen at, by return time, with the
		// largest seen up to each.
		var seen []Op
		for _, op := range list {
			if op.Output.Status == StatusOK && op.Output.Version > 0 && op.Return != Open {
				seen = append(seen, op)
			}
		}
		sort.Slice(seen, func(i, j int) bool { return seen[i].Return < seen[j].Return })
		upTo := make([]uint64, len(seen))
		for i, op := range seen {
			upTo[i] = op.Output.Version
			if i > 0 {
				upTo[i] = max(upTo[i], upTo[i-1])
			}
		}
		for _, op := range list {
			if op.Input.Kind != KindAppend || op.Attempts < 2 || op.Output.Status != StatusOK {
				continue
			}
			i := sort.Search(len(seen), func(i int) bool { return seen[i].Return >= op.Call })
			if i == 0 {
				continue
			}
			floor := upTo[i-1]
			fresh := true
			for _, id := range op.Input.IDs {
				fresh = fresh && idUses[id] == 1
			}
			if op.Output.Version > floor || !fresh && op.Output.Version == floor {
				continue
			}
			n++
			ex.add("stale_retries", "session %s: append(%s) sent %d times from %v answered v%d, but v%d was seen before its first attempt",
				s, strings.Join(op.Input.IDs, ","), op.Attempts, time.Duration(op.Call).Round(time.Millisecond), op.Output.Version, floor)
		}
	}
	return n, ex
}

// checkReplicas reads every session from every node at consistency=stale
// and compares with the final state, waiting up to timeout for replicas
// that are still catching up. It returns the sessions that never matched.
func checkReplicas(hc *api.Client, nodes []Node, finals map[string]*sessionDoc, timeout time.Duration) []string {
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
				r := do(context.Background(), hc, n.URL, api.Call{Method: "GET", Path: sessionPath(s) + "?consistency=stale"})
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
