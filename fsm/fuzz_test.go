package fsm

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

// fuzzSeeds are the encodings of every sample command, commands aimed at
// the sessions of populated(), and some garbage.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	for _, c := range sampleCommands() {
		seeds = append(seeds, c.Encode())
	}
	for _, c := range []Command{
		appendCmd("a", msg("m1", "user", "hi", `{"x":1}`)),                 // replay
		appendCmd("a", msg("m1", "user", "changed")),                       // conflict
		appendCmd("a", msg("m9", "user", "new"), msg("m9", "user", "new")), // in-batch duplicate
		ifVersion(putCmd("a", "f", `{"deep":{"x":[1]}}`), 8),
		patchCmd("b", `{"y":{"k":null,"n":{"o":1}},"z":null}`),
		mergeCmd("e", "only", "", "id", "1"),
		deleteFieldCmd("a", "f"),
		deleteCmd("c"),
		{Op: OpExpire, Before: 4000},
	} {
		seeds = append(seeds, c.Encode())
	}
	return append(seeds,
		nil,
		[]byte{},
		[]byte{formatVersion},
		[]byte{formatVersion, byte(OpAppendMessages), 0xff},
		[]byte{2, 1, 0, 0, 0},
		[]byte{formatVersion, byte(opLimit), 0, 0, 0},
		[]byte{formatVersion, byte(OpMergeFields), 0, 1, 's', 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		[]byte("\x01\x04\x00\x01s\x00\x10{\"a\":{\"b\":{}}}"),
		[]byte("not a command at all"),
	)
}

func FuzzDecodeCommand(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := append([]byte(nil), data...)
		c, err := DecodeCommand(data)
		if !bytes.Equal(in, data) {
			t.Fatalf("DecodeCommand modified its input")
		}
		if err != nil {
			if c != nil {
				t.Fatalf("DecodeCommand returned a command with error %v", err)
			}
			return
		}
		b := c.Encode()
		c2, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v\ncommand %+v\nbytes %x", err, c, b)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("decode(encode(c)) != c:\n got %+v\nwant %+v", c2, c)
		}
		if b2 := c2.Encode(); !bytes.Equal(b, b2) {
			t.Fatalf("encoding is not stable: %x then %x", b, b2)
		}
	})
}

// FuzzApply applies two arbitrary log entries to an FSM that already holds
// sessions. Apply must answer every entry with a *Result and never panic; a
// command that fails or changes nothing leaves the state as it was; the state
// keeps its invariants and survives a snapshot round trip.
func FuzzApply(f *testing.F) {
	seeds := fuzzSeeds()
	for i, s := range seeds {
		f.Add(s, seeds[(i*7+3)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		fsm := populated(t)
		base := fsm.AppliedIndex()
		for i, data := range [][]byte{first, second} {
			index := base + uint64(i) + 1
			before := stateBytes(t, fsm)
			out := fsm.Apply(&raft.Log{Type: raft.LogCommand, Index: index, Data: data})
			r, ok := out.(*Result)
			if !ok || r == nil {
				t.Fatalf("Apply returned %#v, want a *Result", out)
			}
			if fsm.AppliedIndex() != index {
				t.Fatalf("applied index %d, want %d", fsm.AppliedIndex(), index)
			}
			if r.Status != StatusOK || !r.Changed {
				if !bytes.Equal(stateBytes(t, fsm), before) {
					t.Fatalf("%v (changed=%v) changed the state", r.Status, r.Changed)
				}
			} else if r.Version != index && r.Expired == 0 {
				t.Fatalf("a successful write answered version %d at index %d", r.Version, index)
			}
			checkInvariants(t, fsm)
		}
		restored := New(fsm.Limits())
		if err := restoreBytes(restored, snapshotBytes(t, fsm)); err != nil {
			t.Fatalf("Restore of a snapshot: %v", err)
		}
		sameState(t, restored, fsm)
	})
}

// FuzzRestore feeds arbitrary bytes to Restore. It must never panic; when it
// fails, the FSM is exactly as before; when it succeeds, the FSM can still
// apply commands and its snapshots round-trip.
func FuzzRestore(f *testing.F) {
	good := snapshotBytes(f, populated(f))
	f.Add(good)
	f.Add(snapshotBytes(f, New(DefaultLimits)))
	f.Add(good[:len(good)/2])
	f.Add(good[:13])
	f.Add([]byte{})
	f.Add([]byte("SSNP\x01\x00\x00\x00\x00\x00\x00\x00\x07\x08\x01x\x00\x00\x00\x00\x00\xAA\x00"))
	f.Add([]byte("SSNP\x01\x00\x00\x00\x00\x00\x00\x00\x07\x0c\x01x\x00\x00\x00\x00\x01\x01m\x01u\x00\x00\x00\x00"))
	f.Add([]byte("SSNP\x02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := populated(t)
		mark := markState(t, fsm)
		applied := fsm.AppliedIndex()
		if err := restoreBytes(fsm, data); err != nil {
			mark.assertUnchanged(t, fsm)
			if fsm.AppliedIndex() != applied {
				t.Fatalf("a failed Restore moved the applied index from %d to %d", applied, fsm.AppliedIndex())
			}
			return
		}
		// The snapshot decoded: whatever it held, the FSM must keep working.
		next := fsm.AppliedIndex() + 1
		for i, s := range sessions(fsm) {
			if i == 20 {
				break
			}
			var c Command
			if s.messages.len() > 0 {
				m := s.messages.at(0)
				c = appendCmd(s.ID, NewMessage{ID: m.ID, Role: m.Role, Content: m.Content, Meta: m.Meta})
			} else {
				c = mergeCmd(s.ID, "zz", "1")
			}
			if _, ok := fsm.Apply(&raft.Log{Type: raft.LogCommand, Index: next, Data: c.Encode()}).(*Result); !ok {
				t.Fatalf("Apply after Restore did not return a *Result")
			}
			next++
		}
		fsm.Apply(&raft.Log{Type: raft.LogCommand, Index: next, Data: enc(Command{Op: OpExpire, Before: 0})})
		once := snapshotBytes(t, fsm)
		again := New(DefaultLimits)
		if err := restoreBytes(again, once); err != nil {
			t.Fatalf("restoring our own snapshot: %v", err)
		}
		if twice := snapshotBytes(t, again); !bytes.Equal(once, twice) {
			t.Fatalf("snapshot of a restored snapshot differs")
		}
	})
}
