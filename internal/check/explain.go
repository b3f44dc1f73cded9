package check

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// Explain checks one session's history (as sessioncheck writes it on a
// violation) and, when it is not linearizable, prints the end of the
// longest order porcupine found, with the state after each operation, and
// the operations it could not place after it: the violation is among them.
func Explain(w io.Writer, ops []Op, timeout time.Duration) (bool, error) {
	pops, open, dropped := prepare(ops, nil, false)
	model := Model.ToModel()
	res, info := porcupine.CheckOperationsVerbose(model, pops, timeout)
	fmt.Fprintf(w, "%d operations (%d open writes, %d dropped): %s\n", len(pops), open, dropped, map[porcupine.CheckResult]string{
		porcupine.Ok: "linearizable", porcupine.Illegal: "NOT linearizable", porcupine.Unknown: "checker timed out"}[res])
	if res == porcupine.Ok {
		return true, nil
	}
	partials := info.PartialLinearizationsOperations()
	if len(partials) == 0 || len(partials[0]) == 0 {
		return false, nil
	}
	longest := partials[0][0]
	for _, p := range partials[0] {
		if len(p) > len(longest) {
			longest = p
		}
	}
	fmt.Fprintf(w, "longest linearizable prefix: %d operations; its end (client [call, return] s):\n", len(longest))
	states := model.Init()
	type opKey struct {
		client int
		call   int64
	}
	placed := map[opKey]bool{}
	for i, op := range longest {
		_, states = model.Step(states, op.Input, op.Output)
		placed[opKey{op.ClientId, op.Call}] = true
		if i >= len(longest)-15 {
			fmt.Fprintf(w, "  %4d  c%-3d [%.3f, %.3f] %s\n        => %s\n", i, op.ClientId, float64(op.Call)/1e9, float64(op.Return)/1e9,
				model.DescribeOperation(op.Input, op.Output), model.DescribeState(states))
		}
	}
	var rest []porcupine.Operation
	for _, op := range pops {
		if !placed[opKey{op.ClientId, op.Call}] {
			rest = append(rest, op)
		}
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].Call < rest[j].Call })
	fmt.Fprintf(w, "could not be placed next (%d operations, earliest first):\n", len(rest))
	for _, op := range rest[:min(len(rest), 12)] {
		ret := fmt.Sprintf("%.3f", float64(op.Return)/1e9)
		if op.Return == Open {
			ret = "open"
		}
		fmt.Fprintf(w, "        c%-3d [%.3f, %s] %s\n", op.ClientId, float64(op.Call)/1e9, ret, model.DescribeOperation(op.Input, op.Output))
	}
	return false, nil
}
