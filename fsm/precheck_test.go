package fsm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"
)

// Precheck never contradicts Apply: whenever it predicts a failure, Apply
// of the same command on the same state fails with the same status,
// version and detail and changes nothing. Random histories make it predict
// every kind of failure it knows.
func TestPrecheckFailuresAreExactlyWhatApplyAnswers(t *testing.T) {
	predicted := map[Status]int{}
	for seed := range 10 {
		r := rand.New(rand.NewPCG(uint64(seed), 0xc4ec))
		f := New(propLimits)
		g := &gen{r: r, now: 1_000, f: f}
		for i := uint64(1); i <= 800; i++ {
			c := g.command()
			pre := f.Precheck(&c)
			if pre != nil && !Prechecked(&c) {
				t.Fatalf("seed %d step %d: Precheck failed %v, which Prechecked says it never checks", seed, i, c.Op)
			}
			before := stateBytes(t, f)
			res := f.Apply(&raft.Log{Type: raft.LogCommand, Index: i, Data: c.Encode()}).(*Result)
			if pre == nil {
				continue
			}
			predicted[pre.Status]++
			if res.Status != pre.Status || res.Version != pre.Version || res.Detail != pre.Detail || res.Changed {
				t.Fatalf("seed %d step %d: %v precheck %+v, apply %+v", seed, i, c.Op, pre, res)
			}
			if after := stateBytes(t, f); string(after) != string(before) {
				t.Fatalf("seed %d step %d: a command Precheck fails changed the state", seed, i)
			}
		}
	}
	for _, st := range []Status{StatusVersionMismatch, StatusNotFound} {
		if predicted[st] == 0 {
			t.Errorf("no %v was ever predicted: %v", st, fmt.Sprint(predicted))
		}
	}
}
