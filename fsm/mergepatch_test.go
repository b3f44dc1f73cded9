package fsm

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// wantFields checks the session's fields byte for byte (values are stored
// compact, so equal values are equal bytes on every replica).
func wantFields(session string, kv ...string) func(t *testing.T, f *FSM, r *Result) {
	return func(t *testing.T, f *FSM, r *Result) {
		t.Helper()
		s, ok := f.Get(session)
		if !ok {
			t.Fatalf("session %q absent", session)
		}
		want := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			want[kv[i]] = kv[i+1]
		}
		got := map[string]string{}
		for k, v := range s.Fields() {
			got[k] = string(v)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("fields:\n got %v\nwant %v", got, want)
		}
	}
}

func TestMergeFields(t *testing.T) {
	reserved := []string{"id", "messages", "createdAt", "lastAccessedAt", "updatedAt", "version"}
	cases := []applyCase{{
		name:   "merge creates the session and stores compact values",
		cmd:    mergeCmd("s", "a", ` { "x" : [ 1, 2 ] } `, "b", ` "str" `),
		status: StatusOK, version: cmdIndex, created: true, changed: true,
		check: wantFields("s", "a", `{"x":[1,2]}`, "b", `"str"`),
	}, {
		name:   "merge replaces named fields and keeps the others",
		setup:  []Command{mergeCmd("s", "a", "1", "b", "2")},
		cmd:    mergeCmd("s", "b", `{"n":3}`, "c", "true"),
		status: StatusOK, version: cmdIndex, changed: true,
		check: wantFields("s", "a", "1", "b", `{"n":3}`, "c", "true"),
	}, {
		name:   "merge replaces an object value whole, it does not merge into it",
		setup:  []Command{putCmd("s", "a", `{"x":1,"y":2}`)},
		cmd:    mergeCmd("s", "a", `{"y":3}`),
		status: StatusOK, version: cmdIndex, changed: true,
		check: wantFields("s", "a", `{"y":3}`),
	}, {
		name:   "a null value deletes the field",
		setup:  []Command{mergeCmd("s", "a", "1", "b", "2", "c", "3", "d", "4")},
		cmd:    mergeCmd("s", "a", "null", "b", " null\n", "c", "", "e", "5"),
		status: StatusOK, version: cmdIndex, changed: true,
		check: wantFields("s", "d", "4", "e", "5"),
	}, {
		name:   "merge keeps the messages",
		setup:  []Command{appendCmd("s", msg("m1", "u", "c"))},
		cmd:    mergeCmd("s", "a", "1"),
		status: StatusOK, version: cmdIndex, changed: true,
		check: wantStored("s", storedMsg(1, 1, msg("m1", "u", "c"))),
	}, {
		name:   "an empty merge creates the session",
		cmd:    mergeCmd("s"),
		status: StatusOK, version: cmdIndex, created: true, changed: true,
		check: wantFields("s"),
	}, {
		name:   "an empty field name is invalid",
		setup:  []Command{mergeCmd("s", "a", "1")},
		cmd:    mergeCmd("s", "", "1"),
		status: StatusInvalid,
	}, {
		name:   "a field name over the limit is invalid",
		cmd:    mergeCmd("s", "abcdefghijklm", "1"),
		status: StatusInvalid,
	}, {
		name:   "a field name at the limit is stored",
		cmd:    mergeCmd("s", "abcdefghijkl", "1"),
		status: StatusOK, version: cmdIndex, created: true, changed: true,
	}, {
		name:   "fields at MaxFieldBytes exactly are stored",
		setup:  []Command{putCmd("s", "a", `"`+strings.Repeat("x", 20)+`"`)}, // 1+22
		cmd:    mergeCmd("s", "b", `"`+strings.Repeat("y", 38)+`"`),          // 1+40
		status: StatusOK, version: cmdIndex, changed: true,
		check: func(t *testing.T, f *FSM, r *Result) {
			if r.Session.FieldBytes() != 64 {
				t.Errorf("FieldBytes %d, want 64", r.Session.FieldBytes())
			}
		},
	}, {
		name:   "fields over MaxFieldBytes are too large and nothing changes",
		setup:  []Command{putCmd("s", "a", `"`+strings.Repeat("x", 20)+`"`)},
		cmd:    mergeCmd("s", "b", `"`+strings.Repeat("y", 39)+`"`, "c", "1"),
		status: StatusTooLarge, version: 1,
	}, {
		name:   "a first merge over MaxFieldBytes creates nothing",
		cmd:    mergeCmd("s", "b", `"`+strings.Repeat("y", 70)+`"`),
		status: StatusTooLarge,
	}, {
		name:   "MaxFieldBytes counts compact values",
		cmd:    mergeCmd("s", "b", `  [ 1 ,  2 ,  3 ]  `+strings.Repeat(" ", 60)),
		status: StatusOK, version: cmdIndex, created: true, changed: true,
		check: wantFields("s", "b", "[1,2,3]"),
	}, {
		name:   "deleting fields makes room in the same merge",
		setup:  []Command{putCmd("s", "a", `"`+strings.Repeat("x", 50)+`"`)},
		cmd:    mergeCmd("s", "a", "null", "b", `"`+strings.Repeat("y", 50)+`"`),
		status: StatusOK, version: cmdIndex, changed: true,
	}}
	for _, v := range []string{`{`, `nul`, `1 2`, `'x'`, `{"a":1,}`, `[1,]`, `"`} {
		cases = append(cases, applyCase{name: "invalid JSON " + v, setup: []Command{mergeCmd("s", "a", "1")},
			cmd: mergeCmd("s", "a", "2", "b", v), status: StatusInvalid})
	}
	for _, name := range reserved {
		cases = append(cases,
			applyCase{name: "reserved name " + name, setup: []Command{mergeCmd("s", "a", "1")},
				cmd: mergeCmd("s", name, "1", "b", "2"), status: StatusInvalid},
			applyCase{name: "reserved name " + name + " with null", cmd: mergeCmd("s", name, "null"), status: StatusInvalid})
	}
	runApplyCases(t, cases)
}

func TestPatchFieldsFollowsRFC7396(t *testing.T) {
	// RFC 7396 Appendix A, each applied to the value of field "f".
	for _, tc := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, ``}, // null removes the member: the field is gone
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{``, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`}, // target absent
		// More depth: null removal two levels down, untouched siblings kept.
		{`{"a":{"b":{"c":1,"d":2},"e":3}}`, `{"a":{"b":{"c":null,"x":[null]}}}`, `{"a":{"b":{"d":2,"x":[null]},"e":3}}`},
		{`5`, `{"a":{"b":null}}`, `{"a":{}}`},
		{`{"a":1}`, `{}`, `{"a":1}`},
	} {
		t.Run(tc.target+"+"+tc.patch, func(t *testing.T) {
			f := New(DefaultLimits)
			setup := []Command{putCmd("s", "other", "1")}
			if tc.target != "" {
				setup = append(setup, putCmd("s", "f", tc.target))
			}
			applySetup(t, f, setup)
			r := f.ApplyCommand(cmdIndex, &Command{Op: OpPatchFields, Session: "s", At: 5,
				Patch: json.RawMessage(`{"f":` + tc.patch + `}`)})
			if r.Status != StatusOK || r.Version != cmdIndex || !r.Changed {
				t.Fatalf("patch: %v %s", r.Status, r.Detail)
			}
			got, ok := r.Session.Field("f")
			if tc.want == "" {
				if ok {
					t.Fatalf("field f = %s, want it removed", got)
				}
			} else if string(got) != tc.want {
				t.Fatalf("field f = %s, want %s", got, tc.want)
			}
			if v, _ := r.Session.Field("other"); string(v) != "1" {
				t.Errorf("field other = %s, want it untouched", v)
			}
			checkInvariants(t, f)
		})
	}
}

func TestPatchFields(t *testing.T) {
	deep := func(n int) string {
		return `{"f":` + strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) + `}`
	}
	cases := []applyCase{{
		name:   "patch creates the session",
		cmd:    patchCmd("s", `{"a":{"b":null,"c":1},"d":"x"}`),
		status: StatusOK, version: cmdIndex, created: true, changed: true,
		check: wantFields("s", "a", `{"c":1}`, "d", `"x"`),
	}, {
		name:   "a top-level null removes the field and keeps the others",
		setup:  []Command{mergeCmd("s", "a", "1", "b", `{"c":2}`)},
		cmd:    patchCmd("s", `{"a":null}`),
		status: StatusOK, version: cmdIndex, changed: true,
		check: wantFields("s", "b", `{"c":2}`),
	}, {
		name:   "merged objects are stored compact with sorted keys",
		setup:  []Command{putCmd("s", "a", `{"z":1,"m":{"q":1,"b":2}}`)},
		cmd:    patchCmd("s", ` { "a" : { "m" : { "c" : 3 } , "b" : [ 1 , 2 ] } } `),
		status: StatusOK, version: cmdIndex, changed: true,
		check: wantFields("s", "a", `{"b":[1,2],"m":{"b":2,"c":3,"q":1},"z":1}`),
	}, {
		name:   "an empty patch object still writes",
		setup:  []Command{putCmd("s", "a", "1")},
		cmd:    patchCmd("s", `{}`),
		status: StatusOK, version: cmdIndex, changed: true,
		check: wantFields("s", "a", "1"),
	}, {
		name:   "a moderately deep patch applies",
		cmd:    patchCmd("s", deep(10)),
		status: StatusOK, version: cmdIndex, created: true, changed: true,
	}, {
		name:   "a patch nested deeper than the limit is invalid",
		setup:  []Command{putCmd("s", "a", "1")},
		cmd:    patchCmd("s", deep(maxPatchDepth+2)),
		status: StatusInvalid,
	}, {
		name:   "a patch nested beyond what encoding/json parses is invalid",
		cmd:    patchCmd("s", deep(20_000)),
		status: StatusInvalid,
		limits: &DefaultLimits,
	}, {
		name:   "a patch over MaxFieldBytes is too large and nothing changes",
		setup:  []Command{putCmd("s", "a", `{"x":1}`)},
		cmd:    patchCmd("s", `{"a":{"y":"`+strings.Repeat("y", 60)+`"}}`),
		status: StatusTooLarge, version: 1,
	}, {
		name:   "an escaped reserved name is still reserved",
		cmd:    patchCmd("s", `{"\u0069d":1}`),
		status: StatusInvalid,
	}, {
		name:   "an empty field name is invalid",
		cmd:    patchCmd("s", `{"":1}`),
		status: StatusInvalid,
	}, {
		name:   "a reserved name nested inside a field is fine",
		cmd:    patchCmd("s", `{"a":{"id":1,"messages":[]}}`),
		status: StatusOK, version: cmdIndex, created: true, changed: true,
		check: wantFields("s", "a", `{"id":1,"messages":[]}`),
	}}
	for _, p := range []string{`[1]`, `"x"`, `1`, `null`, `true`, ``, ` `, `{`, `{"a":1} x`, `{"a":1}{}`, `{"a":nul}`} {
		cases = append(cases, applyCase{name: "non-object patch " + p, setup: []Command{putCmd("s", "a", "1")},
			cmd: patchCmd("s", p), status: StatusInvalid})
	}
	for _, name := range []string{"messages", "id", "version", "createdAt", "lastAccessedAt", "updatedAt"} {
		cases = append(cases, applyCase{name: "reserved name " + name, setup: []Command{putCmd("s", "a", "1")},
			cmd: patchCmd("s", `{"b":1,"`+name+`":null}`), status: StatusInvalid})
	}
	runApplyCases(t, cases)
}

// Two replicas must store the same bytes whatever the patch's key order or
// formatting.
func TestPatchResultDoesNotDependOnKeyOrder(t *testing.T) {
	a, b := New(DefaultLimits), New(DefaultLimits)
	applySetup(t, a, []Command{putCmd("s", "f", `{"k":{"x":1,"y":2}}`), patchCmd("s", `{"f":{"k":{"z":3,"a":4}},"g":{"q":1,"p":2}}`)})
	applySetup(t, b, []Command{putCmd("s", "f", `{ "k" : { "y":2, "x":1 } }`), patchCmd("s", `{"g":{"p":2,"q":1},"f":{"k":{"a":4,"z":3}}}`)})
	if string(snapshotBytes(t, a)) != string(snapshotBytes(t, b)) {
		sa, _ := a.Get("s")
		sb, _ := b.Get("s")
		t.Fatalf("states differ:\n%s\n%s", sa.Fields(), sb.Fields())
	}
}

func TestPutField(t *testing.T) {
	cases := []applyCase{{
		name:   "put creates the session and stores the value compact",
		cmd:    putCmd("s", "pendingMatch", ` { "id" : 7 } `),
		status: StatusOK, version: cmdIndex, created: true, changed: true,
		check: wantFields("s", "pendingMatch", `{"id":7}`),
	}, {
		name:   "put replaces the whole value",
		setup:  []Command{mergeCmd("s", "a", `{"x":1}`, "b", "2")},
		cmd:    putCmd("s", "a", `{"y":2}`),
		status: StatusOK, version: cmdIndex, changed: true,
		check: wantFields("s", "a", `{"y":2}`, "b", "2"),
	}, {
		name:   "an empty value is invalid",
		setup:  []Command{putCmd("s", "a", "1")},
		cmd:    putCmd("s", "a", ""),
		status: StatusInvalid,
	}, {
		name:   "an invalid JSON value is invalid",
		setup:  []Command{putCmd("s", "a", "1")},
		cmd:    putCmd("s", "a", `{"x":`),
		status: StatusInvalid,
	}, {
		name:   "an empty field name is invalid",
		cmd:    putCmd("s", "", "1"),
		status: StatusInvalid,
	}, {
		name:   "a field name over the limit is invalid",
		cmd:    putCmd("s", "abcdefghijklm", "1"),
		status: StatusInvalid,
	}, {
		name:   "a value over MaxFieldBytes is too large and nothing changes",
		setup:  []Command{putCmd("s", "a", "1")},
		cmd:    putCmd("s", "a", `"`+strings.Repeat("x", 62)+`"`),
		status: StatusTooLarge, version: 1,
	}, {
		name:   "shrinking a value within the limit applies",
		setup:  []Command{putCmd("s", "a", `"`+strings.Repeat("x", 60)+`"`)},
		cmd:    putCmd("s", "a", "1"),
		status: StatusOK, version: cmdIndex, changed: true,
		check: func(t *testing.T, f *FSM, r *Result) {
			if r.Session.FieldBytes() != 2 {
				t.Errorf("FieldBytes %d, want 2", r.Session.FieldBytes())
			}
		},
	}}
	for _, name := range []string{"id", "messages", "createdAt", "lastAccessedAt", "updatedAt", "version"} {
		cases = append(cases, applyCase{name: "reserved name " + name, setup: []Command{putCmd("s", "a", "1")},
			cmd: putCmd("s", name, "1"), status: StatusInvalid})
	}
	runApplyCases(t, cases)
}

func TestDeleteField(t *testing.T) {
	runApplyCases(t, []applyCase{{
		name:   "delete removes the field and keeps the others",
		setup:  []Command{mergeCmd("s", "a", "1", "b", "2"), appendCmd("s", msg("m1", "u", "c"))},
		cmd:    deleteFieldCmd("s", "a"),
		status: StatusOK, version: cmdIndex, changed: true,
		check: both(wantFields("s", "b", "2"), wantStored("s", storedMsg(1, 2, msg("m1", "u", "c"))),
			func(t *testing.T, f *FSM, r *Result) {
				if r.Session.FieldBytes() != 2 {
					t.Errorf("FieldBytes %d, want 2", r.Session.FieldBytes())
				}
			}),
	}, {
		name:   "deleting the last field keeps the session",
		setup:  []Command{putCmd("s", "a", "1")},
		cmd:    deleteFieldCmd("s", "a"),
		status: StatusOK, version: cmdIndex, changed: true,
		check: wantFields("s"),
	}, {
		name:   "a missing field is not found",
		setup:  []Command{putCmd("s", "a", "1"), putCmd("t", "b", "1")},
		cmd:    deleteFieldCmd("s", "b"),
		status: StatusNotFound, version: 1,
	}, {
		name:   "a missing session is not found",
		setup:  []Command{putCmd("t", "a", "1")},
		cmd:    deleteFieldCmd("s", "a"),
		status: StatusNotFound,
		check: func(t *testing.T, f *FSM, r *Result) {
			if _, ok := f.Get("s"); ok {
				t.Errorf("deleting a field created the session")
			}
		},
	}, {
		name:   "a reserved name is never a field",
		setup:  []Command{putCmd("s", "a", "1")},
		cmd:    deleteFieldCmd("s", "id"),
		status: StatusNotFound, version: 1,
	}})
}
