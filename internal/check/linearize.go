package check

// Linearizability: the history is split by session, unknown writes are
// resolved from reads where that is sound, and each session is checked
// with porcupine on its own.

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Violation is one session whose history is not linearizable (or could not
// be checked in time, which counts the same).
type Violation struct {
	Session string `json:"session"`
	Result  string `json:"result"` // "illegal" or "timeout"
	Ops     int    `json:"ops"`
	HTML    string `json:"html,omitempty"`    // porcupine's visualization
	History string `json:"history,omitempty"` // the session's operations, JSON lines
}

// LinearizabilityResult sums up the check.
type LinearizabilityResult struct {
	Sessions   int           `json:"sessions"`
	Ops        int           `json:"ops"`
	OpenWrites int           `json:"open_writes"` // unknown writes left unresolved
	Dropped    int           `json:"dropped"`     // unknown appends the final state shows never happened
	Took       time.Duration `json:"took_ns"`
	Violations []Violation   `json:"violations,omitempty"`
}

// Annotation marks a fault window on the visualization.
type Annotation struct {
	Tag         string
	Start, End  int64
	Description string
}

// prepare turns a session's recorded operations into porcupine's: failed
// operations are dropped (they did not happen), unknown appends are
// resolved against the final state, and unknown writes whose effect a read
// shows get that read's return as their return. finalKnown says whether
// final is the session's state after every write ended; noDeletes that the
// session was never deleted (so a read that counts n messages shows every
// message with seq ≤ n).
func prepare(ops []Op, final *sessionDoc, noDeletes bool) (out []porcupine.Operation, open, dropped int) {
	idUses := map[string]int{}
	for _, op := range ops {
		if op.Output.Status != StatusFailed {
			for _, id := range op.Input.IDs {
				idUses[id]++
			}
		}
	}
	var finalSeq map[string]uint64
	if final != nil {
		finalSeq = make(map[string]uint64, len(final.IDs))
		for i, id := range final.IDs {
			finalSeq[id] = final.Seqs[i]
		}
	}
	for _, op := range ops {
		if op.Output.Status == StatusFailed {
			continue
		}
		in, o, ret := op.Input, op.Output, op.Return
		in.Fresh = true
		for _, id := range in.IDs {
			in.Fresh = in.Fresh && idUses[id] == 1
		}
		if in.Kind == KindAppend && op.Attempts > 1 {
			o.Retried = true
		}
		// An unknown write known to have taken effect before its answer
		// (Applied without resolution) keeps its own return as the bound.
		if o.Status == StatusUnknown && !(o.Applied && ret != Open) {
			ret = Open
			switch {
			case in.Kind == KindAppend && noDeletes && finalSeq != nil:
				var maxSeq uint64
				present := true
				for _, id := range in.IDs {
					s, ok := finalSeq[id]
					present = present && ok
					maxSeq = max(maxSeq, s)
				}
				if !present {
					dropped++
					continue // absent after every write ended: it never happened
				}
				o.Applied = true
				ret = firstRead(ops, op.Call, func(r Output) bool { return r.Count >= int(maxSeq) })
			case in.Kind == KindPutField || in.Kind == KindPatch:
				field, value := in.Field, in.Value
				for k, v := range in.Patch {
					if v != "" {
						field, value = k, v
					}
				}
				ret = firstRead(ops, op.Call, func(r Output) bool { return parseFields(r.Fields)[field] == value })
			}
			if ret == Open {
				open++
			}
		}
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: in, Output: o, Call: op.Call, Return: ret})
	}
	return out, open, dropped
}

// firstRead is the earliest return of a whole-session read called after
// `after` that satisfies shows, or Open. The operation it shows must have
// linearized before that read did, so that return bounds it.
func firstRead(ops []Op, after int64, shows func(Output) bool) int64 {
	best := int64(Open)
	for _, r := range ops {
		if r.Input.Kind == KindRead && r.Output.Status == StatusOK && r.Return > after && r.Return < best && shows(r.Output) {
			best = r.Return
		}
	}
	return best
}

// CheckLinearizable checks every session's history. finals holds each
// session's state read after every write ended (missing for a session that
// no final read reached); deleteSessions names sessions that were deleted
// during the run. On a violation it writes history.html and the session's
// operations under dir.
func CheckLinearizable(ops []Op, finals map[string]*sessionDoc, deleteSessions map[string]bool, timeout time.Duration, dir string, notes []Annotation) LinearizabilityResult {
	start := time.Now()
	bySession := map[string][]Op{}
	for _, op := range ops {
		bySession[op.Input.Session] = append(bySession[op.Input.Session], op)
	}
	sessions := make([]string, 0, len(bySession))
	for s := range bySession {
		sessions = append(sessions, s)
	}
	sort.Strings(sessions)

	model := Model.ToModel()
	var (
		mu  sync.Mutex
		res = LinearizabilityResult{Sessions: len(sessions)}
		wg  sync.WaitGroup
	)
	work := make(chan string)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				pops, open, dropped := prepare(bySession[s], finals[s], !deleteSessions[s])
				r := porcupine.CheckOperationsTimeout(model, pops, timeout)
				mu.Lock()
				res.Ops += len(pops)
				res.OpenWrites += open
				res.Dropped += dropped
				mu.Unlock()
				if r == porcupine.Ok {
					continue
				}
				v := Violation{Session: s, Result: "illegal", Ops: len(pops)}
				if r == porcupine.Unknown {
					v.Result = "timeout"
				}
				if dir != "" {
					v.HTML, v.History = writeViolation(dir, s, model, pops, bySession[s], timeout, notes)
				}
				mu.Lock()
				res.Violations = append(res.Violations, v)
				mu.Unlock()
			}
		}()
	}
	for _, s := range sessions {
		work <- s
	}
	close(work)
	wg.Wait()
	sort.Slice(res.Violations, func(i, j int) bool { return res.Violations[i].Session < res.Violations[j].Session })
	res.Took = time.Since(start)
	return res
}

// writeViolation writes porcupine's visualization and the raw history of a
// session; it returns their paths.
func writeViolation(dir, session string, model porcupine.Model, pops []porcupine.Operation, raw []Op, timeout time.Duration, notes []Annotation) (string, string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", ""
	}
	histPath := filepath.Join(dir, session+".jsonl")
	if f, err := os.Create(histPath); err == nil {
		_ = WriteJSONLines(f, raw)
		f.Close()
	}
	_, info := porcupine.CheckOperationsVerbose(model, pops, timeout)
	var ann []porcupine.Annotation
	for _, n := range notes {
		ann = append(ann, porcupine.Annotation{Tag: n.Tag, Start: n.Start, End: n.End, Description: n.Description, BackgroundColor: "#f8d7da"})
	}
	info.AddAnnotations(ann)
	htmlPath := filepath.Join(dir, session+".html")
	if err := porcupine.VisualizePath(model, info, htmlPath); err != nil {
		return "", histPath
	}
	return htmlPath, histPath
}

// String describes a violation for the text report.
func (v Violation) String() string {
	s := fmt.Sprintf("session %s: %s (%d ops)", v.Session, v.Result, v.Ops)
	if v.HTML != "" {
		s += ", see " + v.HTML
	}
	if v.History != "" {
		s += "; sessioncheck explain " + v.History
	}
	return s
}
