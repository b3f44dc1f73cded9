package check

// The porcupine model of one session. Messages and fields of a session are
// one object: they share the version (the raft index of the last write), so
// the history is partitioned by session id and each session is checked on
// its own.

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// Kind is the operation an Input performs.
type Kind uint8

const (
	KindAppend      Kind = iota // POST …/messages
	KindRead                    // GET the whole session (linearizable)
	KindPage                    // GET …/messages?after=&limit= (linearizable)
	KindPutField                // PUT …/state/{field}, If-Match optional
	KindDeleteField             // DELETE …/state/{field}
	KindPatch                   // PATCH the session (merge patch; null deletes)
	KindDelete                  // DELETE the session
)

var kindNames = [...]string{"append", "read", "page", "put", "delfield", "patch", "delete"}

func (k Kind) String() string { return kindNames[k] }

// IsWrite reports whether operations of this kind change the session.
func (k Kind) IsWrite() bool { return k != KindRead && k != KindPage }

// Input is what a client asked for.
type Input struct {
	Session string `json:"session"`
	Kind    Kind   `json:"kind"`
	// Append: the message ids, in order.
	IDs []string `json:"ids,omitempty"`
	// Fresh is set by the checker when no other operation of the session
	// carries any of IDs: the model then skips the idempotency lookup.
	Fresh bool `json:"-"`
	// PutField / DeleteField: the field; PutField also Value.
	Field string `json:"field,omitempty"`
	Value string `json:"value,omitempty"`
	// Patch: field → value, "" deletes the field (null in the request).
	Patch map[string]string `json:"patch,omitempty"`
	// IfMatch is sent as If-Match when HasIfMatch.
	HasIfMatch bool   `json:"hasIfMatch,omitempty"`
	IfMatch    uint64 `json:"ifMatch,omitempty"`
	// Page: the query.
	After int `json:"after,omitempty"`
	Limit int `json:"limit,omitempty"`
}

// Status is how an operation ended.
type Status uint8

const (
	StatusOK       Status = iota // 2xx
	StatusNotFound               // 404: no such session (or field, for DeleteField)
	StatusConflict               // 412: If-Match did not match
	StatusUnknown                // may or may not have taken effect
	StatusFailed                 // definitely did not take effect; never checked
)

var statusNames = [...]string{"ok", "notfound", "conflict", "unknown", "failed"}

func (s Status) String() string { return statusNames[s] }

// MarshalText makes Status readable in history files.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Output is what the client saw.
type Output struct {
	Status  Status `json:"status"`
	Version uint64 `json:"version,omitempty"`
	// Append: the seq of every id in Input.IDs.
	Seqs []uint64 `json:"seqs,omitempty"`
	// Read: the message ids in order, digested, and the fields.
	Count  int    `json:"count,omitempty"`
	Hash   uint64 `json:"hash,omitempty"`
	Fields string `json:"fields,omitempty"`
	// Page: the ids returned, digested, and the total message count.
	PageLen  int    `json:"pageLen,omitempty"`
	PageHash uint64 `json:"pageHash,omitempty"`
	// Applied is set by the checker on an unknown append whose ids the
	// final read shows: it did take effect.
	Applied bool `json:"applied,omitempty"`
	// Retried is set by the checker on an append that was sent more than
	// once. If an earlier attempt took effect, the answer to the retry is
	// the idempotent one and carries the session's version at the retry,
	// not the version the append created; so that version is only checked
	// to be above the version before the append.
	Retried bool `json:"retried,omitempty"`
}

// logNode is one message of a persistent list: appends share structure, and
// equality of two logs is a comparison of (n, hash).
type logNode struct {
	parent *logNode
	id     string
	n      int
	hash   uint64
}

func (l *logNode) len() int {
	if l == nil {
		return 0
	}
	return l.n
}

func (l *logNode) digest() uint64 {
	if l == nil {
		return 0
	}
	return l.hash
}

func (l *logNode) push(id string) *logNode {
	return &logNode{parent: l, id: id, n: l.len() + 1, hash: chainHash(l.digest(), id)}
}

// seqOf returns the seq of id, walking back from the newest message.
func (l *logNode) seqOf(id string) (uint64, bool) {
	for n := l; n != nil; n = n.parent {
		if n.id == id {
			return uint64(n.n), true
		}
	}
	return 0, false
}

// pageDigest digests the ids at seq after+1 … after+limit.
func (l *logNode) pageDigest(after, limit int) (int, uint64) {
	hi := min(after+limit, l.len())
	if hi <= after {
		return 0, 0
	}
	ids := make([]string, 0, hi-after)
	for n := l; n != nil && n.n > after; n = n.parent {
		if n.n <= hi {
			ids = append(ids, n.id)
		}
	}
	var h uint64
	for i := len(ids) - 1; i >= 0; i-- {
		h = chainHash(h, ids[i])
	}
	return len(ids), h
}

// chainHash extends a digest of an id sequence by one id.
func chainHash(prev uint64, id string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(prev >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(id))
	return h.Sum64()
}

// DigestIDs is the digest a read of these ids in this order has.
func DigestIDs(ids []string) uint64 {
	var h uint64
	for _, id := range ids {
		h = chainHash(h, id)
	}
	return h
}

// state is one session as the model sees it. When verKnown is false, the
// version is only known to be greater than ver: an unknown write may have
// taken effect. Versions are raft indexes, so a new version is checked as
// "greater than", never as "+1".
type state struct {
	exists   bool
	ver      uint64
	verKnown bool
	log      *logNode
	fields   string // canonical: "name=value\x00…", sorted by name
}

// CanonicalFields encodes a field map the way the model compares it.
func CanonicalFields(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(m[k])
		b.WriteByte(0)
	}
	return b.String()
}

func parseFields(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// versionIs checks a version the session must have now, and pins an
// unknown one.
func (s state) versionIs(v uint64) (state, bool) {
	if s.verKnown {
		return s, v == s.ver
	}
	if v <= s.ver {
		return s, false
	}
	s.ver, s.verKnown = v, true
	return s, true
}

// newVersion checks the version a write that changed the session returned.
func (s state) newVersion(v uint64) (state, bool) {
	if v <= s.ver {
		return s, false
	}
	s.ver, s.verKnown = v, true
	return s, true
}

// unknownVersion is the state after a write whose version we did not see.
func (s state) unknownVersion() state {
	s.verKnown = false
	return s
}

func step(st state, in Input, out Output) []state {
	if out.Status == StatusUnknown {
		applied, ok := applyUnknown(st, in)
		switch {
		case out.Applied && ok:
			return []state{applied}
		case out.Applied:
			return nil
		case ok:
			return []state{st, applied}
		}
		return []state{st}
	}
	if next, ok := stepKnown(st, in, out); ok {
		return []state{next}
	}
	return nil
}

// stepKnown checks an operation whose outcome the client saw.
func stepKnown(st state, in Input, out Output) (state, bool) {
	switch in.Kind {
	case KindRead:
		if out.Status == StatusNotFound {
			return st, !st.exists
		}
		if out.Status != StatusOK || !st.exists || out.Count != st.log.len() ||
			out.Hash != st.log.digest() || out.Fields != st.fields {
			return st, false
		}
		return st.versionIs(out.Version)
	case KindPage:
		if out.Status == StatusNotFound {
			return st, !st.exists
		}
		if out.Status != StatusOK || !st.exists || out.Count != st.log.len() {
			return st, false
		}
		n, h := st.log.pageDigest(in.After, in.Limit)
		if n != out.PageLen || h != out.PageHash {
			return st, false
		}
		return st.versionIs(out.Version)
	case KindAppend:
		if out.Status != StatusOK || len(out.Seqs) != len(in.IDs) {
			return st, false
		}
		next, added := st, false
		for i, id := range in.IDs {
			seq, dup := uint64(0), false
			if !in.Fresh {
				seq, dup = next.log.seqOf(id)
			}
			if !dup {
				next.log = next.log.push(id)
				seq, added = uint64(next.log.len()), true
			}
			if out.Seqs[i] != seq {
				return st, false
			}
		}
		switch {
		case out.Retried && !added:
			return next, true
		case out.Retried:
			// The answer is the version at the retry, not the one the
			// append created; but the append created a version above the
			// one before it, and the answer cannot be older than that.
			if out.Version <= st.ver {
				return st, false
			}
			next.exists = true
			return next.unknownVersion(), true
		case !added:
			return next.versionIs(out.Version) // an idempotent re-append changes nothing
		}
		next.exists = true
		return next.newVersion(out.Version)
	case KindDeleteField:
		if out.Status == StatusNotFound {
			_, has := parseFields(st.fields)[in.Field]
			return st, !st.exists || !has
		}
		fallthrough
	case KindPutField, KindPatch:
		if out.Status == StatusConflict {
			return st, conflicts(st, in)
		}
		if out.Status == StatusNotFound && in.Kind == KindPatch {
			_, creates := applyFields(st, in)
			return st, !st.exists && !creates
		}
		if out.Status != StatusOK {
			return st, false
		}
		next, ok := conditionalWrite(st, in)
		if !ok {
			return st, false
		}
		return next.newVersion(out.Version)
	case KindDelete:
		if out.Status == StatusNotFound {
			return st, !st.exists
		}
		if out.Status != StatusOK || !st.exists {
			return st, false
		}
		return deleted(st), true
	}
	return st, false
}

// conflicts reports whether a 412 is a legal answer: If-Match was sent and
// differs from the version (0 for a missing session). While the version is
// unknown any If-Match may differ from it.
func conflicts(st state, in Input) bool {
	switch {
	case !in.HasIfMatch:
		return false
	case !st.exists:
		return in.IfMatch != 0
	case st.verKnown:
		return in.IfMatch != st.ver
	}
	return true
}

// matches reports whether a write's If-Match condition can hold, and pins an
// unknown version to it.
func matches(st state, in Input) (state, bool) {
	switch {
	case !in.HasIfMatch:
		return st, true
	case !st.exists:
		return st, in.IfMatch == 0
	}
	return st.versionIs(in.IfMatch)
}

// conditionalWrite applies a field write whose If-Match holds.
func conditionalWrite(st state, in Input) (state, bool) {
	st, ok := matches(st, in)
	if !ok {
		return st, false
	}
	return applyFields(st, in)
}

// applyFields applies a field write to an existing or new session and
// reports whether the write takes effect (a delete of a missing field, or
// deletions only on a missing session, do not).
func applyFields(st state, in Input) (state, bool) {
	m := parseFields(st.fields)
	switch in.Kind {
	case KindPutField:
		m[in.Field] = in.Value
	case KindDeleteField:
		if !st.exists {
			return st, false
		}
		if _, ok := m[in.Field]; !ok {
			return st, false
		}
		delete(m, in.Field)
	case KindPatch:
		sets := 0
		for k, v := range in.Patch {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
				sets++
			}
		}
		if !st.exists && sets == 0 {
			return st, false
		}
	}
	st.fields = CanonicalFields(m)
	st.exists = true
	return st, true
}

func deleted(st state) state {
	return state{ver: st.ver} // a recreated session gets a larger version
}

// applyUnknown is the state if an operation whose outcome is unknown did
// take effect, and whether it could have.
func applyUnknown(st state, in Input) (state, bool) {
	switch in.Kind {
	case KindAppend:
		next, added := st, false
		for _, id := range in.IDs {
			if !in.Fresh {
				if _, dup := next.log.seqOf(id); dup {
					continue
				}
			}
			next.log = next.log.push(id)
			added = true
		}
		if !added {
			return st, true
		}
		next.exists = true
		return next.unknownVersion(), true
	case KindPutField, KindDeleteField, KindPatch:
		next, ok := conditionalWrite(st, in)
		if !ok {
			return st, false
		}
		return next.unknownVersion(), true
	case KindDelete:
		if !st.exists {
			return st, false
		}
		return deleted(st), true
	}
	return st, false // reads are never unknown
}

// Model is the porcupine model of a session.
var Model = porcupine.NondeterministicModel{
	Init: func() []any { return []any{state{}} },
	Step: func(s, in, out any) []any {
		next := step(s.(state), in.(Input), out.(Output))
		res := make([]any, len(next))
		for i, n := range next {
			res[i] = n
		}
		return res
	},
	Equal: func(a, b any) bool {
		x, y := a.(state), b.(state)
		return x.exists == y.exists && x.ver == y.ver && x.verKnown == y.verKnown &&
			x.log.len() == y.log.len() && x.log.digest() == y.log.digest() && x.fields == y.fields
	},
	Hash: func(s any) uint64 {
		x := s.(state)
		return x.log.digest() ^ x.ver*0x9e3779b97f4a7c15 ^ uint64(len(x.fields))
	},
	DescribeOperation: func(in, out any) string { return describeOp(in.(Input), out.(Output)) },
	DescribeState: func(s any) string {
		x := s.(state)
		if !x.exists {
			return fmt.Sprintf("absent (v>%d)", x.ver)
		}
		v := fmt.Sprintf("v%d", x.ver)
		if !x.verKnown {
			v = fmt.Sprintf("v>%d", x.ver)
		}
		return fmt.Sprintf("%s, %d msgs #%04x, %s", v, x.log.len(), x.log.digest()&0xffff, describeFields(x.fields))
	},
}

func describeFields(canonical string) string {
	m := parseFields(canonical)
	if len(m) == 0 {
		return "{}"
	}
	names := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = k + ":" + m[k]
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func describeOp(in Input, out Output) string {
	var call string
	cond := ""
	if in.HasIfMatch {
		cond = fmt.Sprintf("if v%d ", in.IfMatch)
	}
	switch in.Kind {
	case KindAppend:
		call = fmt.Sprintf("append(%s)", strings.Join(in.IDs, ","))
	case KindRead:
		call = "read()"
	case KindPage:
		call = fmt.Sprintf("page(after %d, limit %d)", in.After, in.Limit)
	case KindPutField:
		call = fmt.Sprintf("put(%s%s=%s)", cond, in.Field, in.Value)
	case KindDeleteField:
		call = fmt.Sprintf("delfield(%s%s)", cond, in.Field)
	case KindPatch:
		call = fmt.Sprintf("patch(%s%s)", cond, describeFields(CanonicalFields(in.Patch)))
	case KindDelete:
		call = "delete()"
	}
	var res string
	switch {
	case out.Status != StatusOK:
		res = out.Status.String()
		if out.Applied {
			res += " (applied)"
		}
	case in.Kind == KindAppend:
		res = fmt.Sprintf("seq %v v%d", out.Seqs, out.Version)
	case in.Kind == KindRead:
		res = fmt.Sprintf("%d msgs #%04x %s v%d", out.Count, out.Hash&0xffff, describeFields(out.Fields), out.Version)
	case in.Kind == KindPage:
		res = fmt.Sprintf("%d of %d msgs #%04x v%d", out.PageLen, out.Count, out.PageHash&0xffff, out.Version)
	default:
		res = fmt.Sprintf("ok v%d", out.Version)
	}
	return call + " -> " + res
}

// UnmarshalText reads a Status written by MarshalText.
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if n == string(b) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("unknown status %q", b)
}
