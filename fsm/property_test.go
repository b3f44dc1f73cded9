package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// propLimits are small enough that random commands hit every limit.
var propLimits = Limits{
	MaxSessionIDBytes: 16,
	MaxMessageIDBytes: 8,
	MaxRoleBytes:      8,
	MaxContentBytes:   24,
	MaxMetaBytes:      24,
	MaxFieldBytes:     160,
	MaxFieldNameBytes: 8,
	MaxMessages:       12,
}

// gen draws random commands over a few sessions, biased towards collisions:
// message ids and field names come from small pools, so replays, id
// conflicts, version mismatches, limits and invalid input all happen often.
type gen struct {
	r   *rand.Rand
	now int64
	f   *FSM // read only, to pick IfVersions that sometimes match
}

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g *gen) pick2(ops ...Op) Op { return ops[g.r.IntN(len(ops))] }

func (g *gen) session() string {
	if g.r.IntN(40) == 0 {
		return g.pick("", "bad id", "x/y", strings.Repeat("s", 17))
	}
	return fmt.Sprintf("s%d", g.r.IntN(10))
}

func (g *gen) message() NewMessage {
	// An id mostly comes with the same role, content and meta, so that
	// appending it again is a replay; sometimes with others, a conflict.
	k := g.r.IntN(16)
	m := NewMessage{ID: fmt.Sprintf("m%d", k), Role: []string{"user", "bot"}[k%2], Content: fmt.Sprintf("c%d", k)}
	if k%4 == 0 {
		m.Meta = json.RawMessage(fmt.Sprintf(`{"k":%d}`, k))
	}
	switch g.r.IntN(40) {
	case 0:
		m.Content = strings.Repeat("c", 25) // over the limit
	case 1:
		m.Role = ""
	case 2:
		m.ID = ""
	case 3:
		m.Meta = json.RawMessage(`{"k":`) // not JSON
	case 4, 5, 6:
		m.Content = "other"
	case 7, 8:
		m.Meta = json.RawMessage(g.pick(`[1,2]`, `"x"`))
	}
	return m
}

func (g *gen) fieldName() string {
	if g.r.IntN(25) == 0 {
		return g.pick("id", "messages", "version", "", "toolongname")
	}
	return g.pick("a", "b", "c", "d", "e")
}

// value returns a JSON text: scalars, nulls, nested objects, now and then a
// long string (towards MaxFieldBytes) or invalid JSON.
func (g *gen) value(depth int) string {
	switch n := g.r.IntN(12); {
	case n < 3:
		return g.pick("1", `"str"`, "true", "[1,null]", " 2 ")
	case n < 5:
		return "null"
	case n == 5 && depth == 0:
		return `{"k":` // not JSON
	case n == 6:
		return `"` + strings.Repeat("v", 60+g.r.IntN(40)) + `"` // pushes towards MaxFieldBytes
	case depth < 3:
		var b strings.Builder
		b.WriteString("{")
		for i, k := range []string{"x", "y", "z"}[:1+g.r.IntN(3)] {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%q:%s", k, g.value(depth+1))
		}
		b.WriteString("}")
		return b.String()
	default:
		return "0"
	}
}

func (g *gen) command() Command {
	g.now += int64(g.r.IntN(10))
	c := Command{Session: g.session(), At: g.now}
	switch n := g.r.IntN(100); {
	case n < 35:
		c.Op = OpAppendMessages
		for i := g.r.IntN(4); i >= 0; i-- {
			c.Messages = append(c.Messages, g.message())
		}
		if g.r.IntN(30) == 0 {
			c.Messages = nil
		}
	case n < 50:
		c.Op = OpMergeFields
		c.Fields = map[string]json.RawMessage{}
		for i := g.r.IntN(3); i >= 0; i-- {
			v := g.value(0)
			if v == "null" && g.r.IntN(2) == 0 {
				c.Fields[g.fieldName()] = nil
			} else {
				c.Fields[g.fieldName()] = json.RawMessage(v)
			}
		}
	case n < 62:
		c.Op = OpPatchFields
		if g.r.IntN(20) == 0 {
			c.Patch = json.RawMessage(g.pick(`[1]`, `null`, `"x"`, ``))
		} else {
			c.Patch = json.RawMessage(fmt.Sprintf(`{%q:%s}`, g.fieldName(), g.value(0)))
		}
	case n < 74:
		c.Op = OpPutField
		c.Field, c.Value = g.fieldName(), json.RawMessage(g.value(0))
	case n < 84:
		c.Op = OpDeleteField
		c.Field = g.fieldName()
	case n < 90:
		c.Op = OpDeleteSession
	case n < 93:
		c.Op = OpExpire
		if g.r.IntN(3) > 0 {
			c.Before = g.now - int64(g.r.IntN(150))
		}
	case n < 95:
		c.Op = OpSetAlarm
		c.Name = g.pick("a", "b", "c")
		c.Due = g.now + int64(g.r.IntN(60)) - 10
		if g.r.IntN(3) == 0 {
			c.Value = json.RawMessage(g.value(0))
		}
	case n < 96:
		c.Op = g.pick2(OpDeleteAlarm, OpFireAlarm, OpAlarmDelivered)
		c.Name = g.pick("a", "b", "c")
		c.Set = uint64(g.r.IntN(600))
		if s, ok := g.f.Get(c.Session); ok && g.r.IntN(2) == 0 {
			if a, ok := s.alarms[c.Name]; ok {
				c.Set = a.Set
			}
			if len(s.fired) > 0 && c.Op == OpAlarmDelivered {
				c.Name, c.Set = s.fired[0].Name, s.fired[0].Version
			}
		}
	case n < 97:
		c.Op = OpSetExpiry
		switch g.r.IntN(5) {
		case 0: // clear
		case 1, 2:
			c.TTL = int64(g.r.IntN(100))
		case 3:
			c.Expires = g.now + int64(g.r.IntN(100)) - 20
		default:
			c.TTL, c.Expires = 5, g.now // invalid: both
		}
	default:
		c.Op = OpNoop
	}
	if c.Op != OpExpire && g.r.IntN(4) == 0 {
		c.HasIfVersion = true
		var cur uint64
		if s, ok := g.f.Get(c.Session); ok {
			cur = s.Version
		}
		switch g.r.IntN(3) {
		case 0:
			c.IfVersion = cur
		case 1:
			c.IfVersion = 0
		default:
			c.IfVersion = uint64(g.r.IntN(600))
		}
	}
	return c
}

func sameResult(a, b *Result) bool {
	return a.Status == b.Status && a.Version == b.Version && a.Created == b.Created &&
		a.Changed == b.Changed && a.Expired == b.Expired && reflect.DeepEqual(a.Messages, b.Messages)
}

// Random command sequences applied to A, and to B which is restored from a
// snapshot of A taken at a random point, end in byte-identical snapshots
// with equal results for every command after the restore. After every step
// A keeps its invariants, and a command that failed or changed nothing left
// A's state exactly as it was.
func TestRandomHistoriesReplicateThroughSnapshots(t *testing.T) {
	seeds, steps := 20, 500
	if testing.Short() {
		seeds, steps = 5, 300
	}
	statuses := map[Status]int{}
	var expired, replays int
	for seed := 0; seed < seeds; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(seed), 0x5e55))
			a, b := New(propLimits), New(propLimits)
			g := &gen{r: r, now: 1_000, f: a}
			restoreAt := uint64(r.IntN(steps + 1))

			// B starts with state of its own that Restore must wipe out.
			applySetup(t, b, []Command{appendCmd("s1", msg("zz", "user", "x")), putCmd("s99", "a", "1")})
			if restoreAt == 0 {
				restoreInto(t, b, a)
			}
			for i := uint64(1); i <= uint64(steps); i++ {
				c := g.command()
				l := &raft.Log{Type: raft.LogCommand, Index: i, Data: c.Encode()}
				before := stateBytes(t, a)
				ra, ok := a.Apply(l).(*Result)
				if !ok {
					t.Fatalf("step %d: Apply did not return a *Result", i)
				}
				statuses[ra.Status]++
				if ra.Expired > 0 {
					expired++
				}
				if c.Op == OpAppendMessages && ra.Status == StatusOK && !ra.Changed {
					replays++
				}
				if a.AppliedIndex() != i {
					t.Fatalf("step %d: applied index %d", i, a.AppliedIndex())
				}
				checkInvariants(t, a)
				if ra.Status != StatusOK || !ra.Changed {
					if !bytes.Equal(stateBytes(t, a), before) {
						t.Fatalf("step %d: %v %+v answered %v changed=%v but changed the state", i, c.Op, c, ra.Status, ra.Changed)
					}
				}
				// A fire is not a client's write (it keeps the last-write
				// time) and a delivery mark is no change a client sees.
				if ra.Status == StatusOK && ra.Changed && c.Op != OpDeleteSession && c.Op != OpExpire && c.Op != OpAlarmDelivered {
					if s, _ := a.Get(c.Session); s == nil || s.Version != i || (s.UpdatedAt != c.At && c.Op != OpFireAlarm) {
						t.Fatalf("step %d: a successful %v did not stamp the session with index and At", i, c.Op)
					}
				}
				if i > restoreAt {
					rb := b.Apply(l).(*Result)
					if !sameResult(ra, rb) {
						t.Fatalf("step %d (%v): A answered %+v, B answered %+v", i, c.Op, ra, rb)
					}
				}
				if i == restoreAt {
					restoreInto(t, b, a)
				}
			}
			sa, sb := snapshotBytes(t, a), snapshotBytes(t, b)
			if !bytes.Equal(sa, sb) {
				t.Fatalf("final snapshots differ (restored at %d)", restoreAt)
			}
			sameState(t, b, a)
		})
	}
	// The generator must actually reach every outcome, or the test proves little.
	for st := StatusOK; st <= StatusTooLarge; st++ {
		if statuses[st] == 0 {
			t.Errorf("no command ended in %v; the generator needs tuning (%v)", st, statuses)
		}
	}
	if expired == 0 || replays == 0 {
		t.Errorf("%d expiries removed sessions and %d appends were pure replays; want some of each", expired, replays)
	}
	t.Logf("outcomes: %v, %d expiries, %d replays", statuses, expired, replays)
}

// restoreInto snapshots src and restores the bytes into dst.
func restoreInto(t *testing.T, dst, src *FSM) {
	t.Helper()
	if err := restoreBytes(dst, snapshotBytes(t, src)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	sameState(t, dst, src)
	checkInvariants(t, dst)
}
