package check

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Report is the outcome of a run.
type Report struct {
	Target   string        `json:"target"`
	Seed     uint64        `json:"seed"`
	Duration time.Duration `json:"duration_ns"`

	Invoked int `json:"invoked"`
	OK      int `json:"ok"`      // definite answers: 2xx, 404 and 412 included
	Failed  int `json:"failed"`  // definitely not applied (or a read that got no answer)
	Unknown int `json:"unknown"` // writes whose outcome stayed unknown
	// Acked counts acknowledged writes. The problem counts below are all
	// here at the top level, whichever check found them; each kind keeps
	// its first examples in Examples under the same name. Lost,
	// Duplicates and Misplaced are messages, Gaps, Unread, Divergent,
	// Illegal and Timeouts sessions.
	Acked            int             `json:"acked"`
	Lost             int             `json:"lost"`
	Duplicates       int             `json:"duplicates"`
	Misplaced        int             `json:"misplaced"`
	Gaps             int             `json:"gaps"`
	Unread           int             `json:"unread"`
	Divergent        int             `json:"divergent"`
	LostBeforeDelete int             `json:"lost_before_delete"` // messages of deleted sessions missing from a read before the delete
	StaleRetries     int             `json:"stale_retries"`      // retried appends answering a version older than the append created
	Illegal          int             `json:"illegal"`            // sessions porcupine found not linearizable
	Timeouts         int             `json:"timeouts"`           // sessions porcupine could not decide in time
	Linearizable     bool            `json:"linearizable"`
	Unexpected       int64           `json:"unexpected"` // 400/409/413 answers: a bug somewhere
	Examples         Examples        `json:"examples,omitempty"`
	Faults           map[string]int  `json:"faults"`
	FaultLog         []FaultRecord   `json:"fault_log"`
	Longest          UnavailableSpan `json:"longest_write_unavailable"`

	// What the change-stream readers found (see StreamResult): messages
	// skipped, repeated, unlike the final state, or acknowledged and never
	// delivered; and events or refusals that make no sense.
	StreamGaps       int `json:"stream_gaps"`
	StreamDuplicates int `json:"stream_duplicates"`
	StreamMismatches int `json:"stream_mismatches"`
	StreamMissed     int `json:"stream_missed"`
	StreamErrors     int `json:"stream_errors"`

	Durability      DurabilityResult      `json:"durability"`
	Linearizability LinearizabilityResult `json:"linearizability"`
	Streams         StreamResult          `json:"streams"`
	// Problems has the run's own problems (faults that could not be
	// injected or healed) and one line per kind of problem the checks
	// found; the examples of each kind are in Examples.
	Problems []string `json:"problems,omitempty"`
	Pass     bool     `json:"pass"`
}

// problemKinds are the kinds of problem in the order the report lists
// them: what they count, by their name in Examples.
var problemKinds = []struct{ name, what string }{
	{"lost", "acknowledged messages missing from the final state"},
	{"duplicates", "messages stored more than once"},
	{"misplaced", "messages acknowledged at one seq and stored or acknowledged at another"},
	{"gaps", "sessions whose seqs are not 1..n"},
	{"unread", "sessions no final read reached"},
	{"divergent", "sessions on which a replica disagrees with the final state"},
	{"lost_before_delete", "acknowledged messages missing from a read before their session was deleted"},
	{"stale_retries", "retried appends answered with a version older than the append created"},
	{"illegal", "sessions not linearizable"},
	{"timeouts", "sessions the linearizability check could not decide in time"},
	{"unexpected", "unexpected 400/409/413 answers"},
	{"stream_gaps", "jumps in the seqs a change stream delivered"},
	{"stream_duplicates", "messages a change stream delivered twice"},
	{"stream_mismatches", "messages a change stream delivered unlike the final state or the acknowledgement at their seq"},
	{"stream_missed", "acknowledged messages a followed change stream never delivered"},
	{"stream_errors", "malformed change-stream events, event ids going back, streams refused"},
}

// count is the number of problems of a kind.
func (r *Report) count(kind string) int {
	switch kind {
	case "lost":
		return r.Lost
	case "duplicates":
		return r.Duplicates
	case "misplaced":
		return r.Misplaced
	case "gaps":
		return r.Gaps
	case "unread":
		return r.Unread
	case "divergent":
		return r.Divergent
	case "lost_before_delete":
		return r.LostBeforeDelete
	case "stale_retries":
		return r.StaleRetries
	case "illegal":
		return r.Illegal
	case "timeouts":
		return r.Timeouts
	case "unexpected":
		return int(r.Unexpected)
	case "stream_gaps":
		return r.StreamGaps
	case "stream_duplicates":
		return r.StreamDuplicates
	case "stream_mismatches":
		return r.StreamMismatches
	case "stream_missed":
		return r.StreamMissed
	case "stream_errors":
		return r.StreamErrors
	}
	return 0
}

// UnavailableSpan is the longest time one session could not be written:
// from the first failed write of a run of failures to the next success.
type UnavailableSpan struct {
	Session  string        `json:"session,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	From     time.Duration `json:"from_ns"` // since the run started
}

func (r *Report) summarize(ops []Op, faults []FaultRecord, hist *History, verifier int, unexpected int64) {
	r.Faults = map[string]int{}
	for _, f := range faults {
		r.Faults[f.Kind]++
	}
	for _, op := range ops {
		if op.Client == verifier {
			continue // the final reads
		}
		r.Invoked++
		switch op.Output.Status {
		case StatusFailed:
			r.Failed++
		case StatusUnknown:
			r.Unknown++
		default:
			r.OK++
			if op.Input.Kind.IsWrite() && op.Output.Status == StatusOK {
				r.Acked++
			}
		}
	}
	for i := range faults {
		f := &faults[i]
		f.Before = availability(ops, f.Start-int64(5*time.Second), f.Start, verifier)
		f.During = availability(ops, f.Start, f.Heal, verifier)
		f.After = availability(ops, f.Heal, f.Heal+int64(5*time.Second), verifier)
		until := f.Heal + int64(f.Healthy) + int64(10*time.Second)
		if i+1 < len(faults) {
			until = min(until, faults[i+1].Start) // the next fault's failures are its own
		}
		f.WritesRecovered = writesRecovered(ops, f.Start, until, verifier)
	}
	r.FaultLog = faults
	r.Longest = longestUnavailable(ops, verifier)
	r.Unexpected = unexpected
	for _, op := range ops {
		if strings.HasPrefix(op.Detail, "unexpected ") {
			r.Examples.add("unexpected", "session %s: %s %s", op.Input.Session, op.Input.Kind, op.Detail)
		}
	}
	d := r.Durability
	r.Lost, r.Duplicates, r.Misplaced, r.Gaps, r.Unread, r.Divergent, r.LostBeforeDelete =
		d.Lost, d.Duplicates, d.Misplaced, d.Gaps, d.Unread, d.Divergent, d.LostBeforeDelete
	r.Examples.merge(d.Examples)
	st := r.Streams
	r.StreamGaps, r.StreamDuplicates, r.StreamMismatches, r.StreamMissed, r.StreamErrors =
		st.Gaps, st.Duplicates, st.Mismatches, st.Missed, st.Errors
	r.Examples.merge(st.Examples)
	var retries Examples
	r.StaleRetries, retries = checkRetriedVersions(ops)
	r.Examples.merge(retries)
	for _, v := range r.Linearizability.Violations {
		if v.Result == "timeout" {
			r.Timeouts++
			r.Examples.add("timeouts", "%s", v.String())
		} else {
			r.Illegal++
			r.Examples.add("illegal", "%s", v.String())
		}
	}
	r.Linearizable = len(r.Linearizability.Violations) == 0
	for _, k := range problemKinds {
		if r.count(k.name) > 0 {
			r.Problems = append(r.Problems, r.kindLine(k.name, k.what))
		}
	}
	r.Pass = len(r.Problems) == 0
}

func availability(ops []Op, from, to int64, verifier int) Availability {
	var a Availability
	for _, op := range ops {
		if op.Client != verifier && op.Call >= from && op.Call < to {
			a.Ops++
			if op.Output.Status != StatusFailed && op.Output.Status != StatusUnknown {
				a.OK++
			}
		}
	}
	if a.Ops > 0 {
		a.SuccessRate = float64(a.OK) / float64(a.Ops)
	}
	if secs := time.Duration(to - from).Seconds(); secs > 0 {
		a.PerSecond = float64(a.Ops) / secs
	}
	return a
}

// writesRecovered is how long after from writes were last disturbed: the
// writes invoked in [from, until) are put in 500 ms windows by call time,
// and a window is disturbed when more than 10% of its writes failed or
// stayed unknown. It returns the end of the last disturbed window (0 when
// none was), so one stray failure does not count as an outage.
func writesRecovered(ops []Op, from, until int64, verifier int) time.Duration {
	const window = int64(500 * time.Millisecond)
	type tally struct{ all, bad int }
	windows := map[int64]*tally{}
	for _, op := range ops {
		if op.Client == verifier || !op.Input.Kind.IsWrite() || op.Call < from || op.Call >= until {
			continue
		}
		w := (op.Call - from) / window
		t := windows[w]
		if t == nil {
			t = &tally{}
			windows[w] = t
		}
		t.all++
		if op.Output.Status == StatusFailed || op.Output.Status == StatusUnknown {
			t.bad++
		}
	}
	last := int64(-1)
	for w, t := range windows {
		if t.bad*10 > t.all && w > last {
			last = w
		}
	}
	return time.Duration((last + 1) * window)
}

func longestUnavailable(ops []Op, verifier int) UnavailableSpan {
	bySession := map[string][]Op{}
	for _, op := range ops {
		if op.Client != verifier && op.Input.Kind.IsWrite() {
			bySession[op.Input.Session] = append(bySession[op.Input.Session], op)
		}
	}
	var best UnavailableSpan
	for s, list := range bySession {
		sort.Slice(list, func(i, j int) bool { return list[i].Call < list[j].Call })
		var failingSince int64 = -1
		for _, op := range list {
			failed := op.Output.Status == StatusFailed || op.Output.Status == StatusUnknown
			switch {
			case failed && failingSince < 0:
				failingSince = op.Call
			case !failed && failingSince >= 0:
				if d := time.Duration(op.Return - failingSince); d > best.Duration {
					best = UnavailableSpan{Session: s, Duration: d, From: time.Duration(failingSince)}
				}
				failingSince = -1
			}
		}
	}
	return best
}

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) {
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "sessioncheck: %s — %s, seed %d, %v\n", verdict, r.Target, r.Seed, r.Duration.Round(time.Millisecond))
	fmt.Fprintf(w, "operations: %d invoked, %d ok, %d failed, %d unknown; %d acknowledged writes, %d unexpected answers\n",
		r.Invoked, r.OK, r.Failed, r.Unknown, r.Acked, r.Unexpected)
	d := r.Durability
	fmt.Fprintf(w, "durability: %d acknowledged messages, %d lost, %d duplicated, %d misplaced, %d sessions with gaps, %d unread, %d divergent\n",
		d.Acked, r.Lost, r.Duplicates, r.Misplaced, r.Gaps, r.Unread, r.Divergent)
	fmt.Fprintf(w, "deleted sessions: %d acknowledged messages, %d missing from a read before the delete; retried appends: %d answered a stale version\n",
		d.DeletedAcked, r.LostBeforeDelete, r.StaleRetries)
	l := r.Linearizability
	lin := "linearizable"
	if !r.Linearizable {
		lin = fmt.Sprintf("NOT linearizable (%d sessions)", len(l.Violations))
	}
	fmt.Fprintf(w, "linearizability: %s; %d sessions, %d ops, %d open writes, %d unknown appends dropped, checked in %v\n",
		lin, l.Sessions, l.Ops, l.OpenWrites, l.Dropped, l.Took.Round(time.Millisecond))
	if st := r.Streams; st.Readers > 0 {
		fmt.Fprintf(w, "streams: %d sessions followed by %d readers, %d events checked (%d messages, %d acknowledged appends looked for), %d gaps, %d duplicates, %d mismatches, %d missed, %d errors, %d reconnects (%d resume events, %d attempts refused)\n",
			st.Sessions, st.Readers, st.Events, st.Messages, st.Acked, r.StreamGaps, r.StreamDuplicates, r.StreamMismatches, r.StreamMissed, r.StreamErrors,
			st.Reconnects, st.Resumes, st.Refused)
	} else {
		fmt.Fprintf(w, "streams: not followed (--stream-readers 0)\n")
	}
	if r.Longest.Session != "" {
		fmt.Fprintf(w, "longest write-unavailable window: %v (session %s, from %v)\n",
			r.Longest.Duration.Round(time.Millisecond), r.Longest.Session, r.Longest.From.Round(time.Millisecond))
	}
	kinds := make([]string, 0, len(r.Faults))
	for k, n := range r.Faults {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "faults: %d (%s)\n", len(r.FaultLog), strings.Join(kinds, " "))
	if len(r.FaultLog) > 0 {
		fmt.Fprintf(w, "  %-14s %-7s %8s %8s %9s %9s  %-16s %-16s %-16s\n", "fault", "node", "at", "held", "healthy", "writes ok", "before", "during", "after")
		for _, f := range r.FaultLog {
			fmt.Fprintf(w, "  %-14s %-7s %8s %8s %9s %9s  %-16s %-16s %-16s\n", f.Kind, f.Node,
				secs(time.Duration(f.Start)), secs(time.Duration(f.Heal-f.Start)), secs(f.Healthy), secs(f.WritesRecovered),
				f.Before, f.During, f.After)
			if f.Err != "" {
				fmt.Fprintf(w, "    error: %s\n", f.Err)
			}
		}
	}
	// The run's own problems first, then each kind with its examples.
	kindLines := map[string]bool{}
	for _, k := range problemKinds {
		kindLines[r.kindLine(k.name, k.what)] = true
	}
	for _, p := range r.Problems {
		if !kindLines[p] {
			fmt.Fprintf(w, "PROBLEM: %s\n", p)
		}
	}
	for _, k := range problemKinds {
		n := r.count(k.name)
		if n == 0 {
			continue
		}
		fmt.Fprintf(w, "PROBLEM: %s\n", r.kindLine(k.name, k.what))
		list := r.Examples[k.name]
		for _, x := range list {
			fmt.Fprintf(w, "  %s\n", x)
		}
		if n > len(list) {
			fmt.Fprintf(w, "  … and %d more\n", n-len(list))
		}
	}
}

// kindLine is the line of Problems for a kind that was found.
func (r *Report) kindLine(kind, what string) string {
	return fmt.Sprintf("%d %s: %s", r.count(kind), kind, what)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

func (a Availability) String() string {
	return fmt.Sprintf("%3.0f%% %5.0f/s", 100*a.SuccessRate, a.PerSecond)
}
