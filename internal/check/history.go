package check

import (
	"encoding/json"
	"io"
	"math"
	"sync"
	"time"
)

// Open is the return time of an operation whose outcome is unknown and not
// bounded by a later read: it may linearize at any point after its call.
const Open = math.MaxInt64

// Op is one recorded operation. A retried append is one Op, from its first
// call to its last return.
type Op struct {
	Client   int    `json:"client"`
	Input    Input  `json:"input"`
	Output   Output `json:"output"`
	Call     int64  `json:"call"`   // ns since the run started
	Return   int64  `json:"return"` // ns since the run started; Open when unknown
	Node     string `json:"node"`   // the node that gave the last answer
	Attempts int    `json:"attempts"`
	Detail   string `json:"detail,omitempty"` // the last failure, for the report
	// Messages are the message ids a whole-session read returned, in seq
	// order. They are kept for the sessions the workload deletes and for
	// the final reads: the durability check of a deleted session looks for
	// its acknowledged messages in the reads made before its delete.
	Messages []string `json:"messages,omitempty"`
}

// History collects operations from concurrent clients on one monotonic
// clock (one process, time.Since of one base).
type History struct {
	base time.Time

	mu  sync.Mutex
	ops []Op
}

// NewHistory starts the clock.
func NewHistory() *History { return &History{base: time.Now()} }

// Now is the history's clock.
func (h *History) Now() int64 { return int64(time.Since(h.base)) }

func (h *History) add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of everything recorded so far.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}

// WriteJSONLines writes ops one JSON object a line.
func WriteJSONLines(w io.Writer, ops []Op) error {
	enc := json.NewEncoder(w)
	for _, op := range ops {
		if err := enc.Encode(op); err != nil {
			return err
		}
	}
	return nil
}

// ReadJSONLines reads a history written by WriteJSONLines.
func ReadJSONLines(r io.Reader) ([]Op, error) {
	dec := json.NewDecoder(r)
	var ops []Op
	for dec.More() {
		var op Op
		if err := dec.Decode(&op); err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}
