package fsm

import (
	"context"
	"hash/fnv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// bucketCount splits the session map so that Snapshot only has to freeze
// bucketCount pointers and Apply only copies the one bucket it writes to.
const bucketCount = 256

// bucket is one slice of the session map. Once a snapshot has frozen it, it
// is never written again: the next Apply that needs it works on a copy.
type bucket struct {
	sessions map[string]*Session
	frozen   bool
}

func bucketOf(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % bucketCount)
}

// FSM is the replicated state of one shard. See the package documentation for
// which methods may run concurrently.
type FSM struct {
	limits Limits

	// mu guards the bucket array and writes to unfrozen buckets against
	// concurrent readers. Apply holds it only while swapping pointers.
	mu      sync.RWMutex
	buckets [bucketCount]*bucket

	// msgIndex maps session id → message id → seq. It is derived from the
	// messages, used only by the apply goroutine, and rebuilt on Restore.
	msgIndex map[string]*idIndex

	// tombs holds the message ids of recently deleted sessions (see
	// tombstone.go); tombQueue orders them for expiry. Apply goroutine only,
	// and part of the snapshot.
	tombs     map[string]*tombstone
	tombQueue []tombRef

	// bytes is the sum of Session.Size over every session; timed counts
	// the sessions with alarms (pending or undelivered) or an expiry of
	// their own, so the leader's once-a-second sweeps skip an FSM that has
	// none.
	bytes atomic.Int64
	timed atomic.Int64

	watch watchers // see watch.go

	applied  atomic.Uint64
	appliedC chan struct{} // closed and replaced whenever applied advances
	cmu      sync.Mutex    // guards appliedC
}

// New returns an empty FSM enforcing limits.
func New(limits Limits) *FSM {
	f := &FSM{limits: limits, appliedC: make(chan struct{})}
	f.reset()
	return f
}

func (f *FSM) reset() {
	for i := range f.buckets {
		f.buckets[i] = &bucket{sessions: map[string]*Session{}}
	}
	f.msgIndex = map[string]*idIndex{}
	f.bytes.Store(0)
	f.timed.Store(0)
	f.tombs = map[string]*tombstone{}
	f.tombQueue = nil
}

// Limits returns the limits this FSM enforces.
func (f *FSM) Limits() Limits { return f.limits }

// Get returns the session with the given id. Safe from any goroutine.
func (f *FSM) Get(id string) (*Session, bool) {
	f.mu.RLock()
	s, ok := f.buckets[bucketOf(id)].sessions[id]
	f.mu.RUnlock()
	return s, ok
}

// Len counts the sessions. Safe from any goroutine.
func (f *FSM) Len() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := 0
	for _, b := range f.buckets {
		n += len(b.sessions)
	}
	return n
}

// Summary is what tells two states apart cheaply: how many sessions they
// hold and their highest version.
type Summary struct {
	Sessions   int
	MaxVersion uint64
}

// Summary summarizes the current state. Safe from any goroutine.
func (f *FSM) Summary() Summary {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var sum Summary
	for _, b := range f.buckets {
		sum.Sessions += len(b.sessions)
		for _, s := range b.sessions {
			sum.MaxVersion = max(sum.MaxVersion, s.Version)
		}
	}
	return sum
}

// Bytes estimates the memory the sessions hold: the sum of their Size.
// Safe from any goroutine.
func (f *FSM) Bytes() int64 { return f.bytes.Load() }

// AppliedIndex is the raft index of the last entry this FSM applied.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// WaitApplied blocks until the FSM has applied index or ctx ends.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.cmu.Lock()
		ch := f.appliedC
		f.cmu.Unlock()
		if f.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *FSM) setApplied(index uint64) {
	if index > f.applied.Load() {
		f.publishApplied(index)
	}
}

// publishApplied records index as applied and wakes every WaitApplied.
func (f *FSM) publishApplied(index uint64) {
	f.applied.Store(index)
	f.cmu.Lock()
	close(f.appliedC)
	f.appliedC = make(chan struct{})
	f.cmu.Unlock()
}

// put publishes s (or removes id when s is nil), copying the bucket first if
// a snapshot has frozen it.
func (f *FSM) put(id string, s *Session) {
	i := bucketOf(id)
	f.mu.Lock()
	b := f.buckets[i]
	if b.frozen {
		m := make(map[string]*Session, len(b.sessions)+1)
		for k, v := range b.sessions {
			m[k] = v
		}
		b = &bucket{sessions: m}
		f.buckets[i] = b
	}
	f.bytes.Add(sizeOf(s) - sizeOf(b.sessions[id]))
	f.timed.Add(timedOf(s) - timedOf(b.sessions[id]))
	if s == nil {
		delete(b.sessions, id)
	} else {
		b.sessions[id] = s
	}
	f.mu.Unlock()
	f.watch.notify(id)
}

// Apply applies one committed raft log entry. Commands that fail to decode
// are answered with StatusInvalid and change nothing: a replica must never
// crash on a log entry.
func (f *FSM) Apply(l *raft.Log) interface{} {
	res := f.applyLog(l)
	f.setApplied(l.Index)
	return res
}

// ApplyBatch applies a run of committed entries and publishes the applied
// index once for the whole batch.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	for i, l := range logs {
		out[i] = f.applyLog(l)
	}
	if len(logs) > 0 {
		f.setApplied(logs[len(logs)-1].Index)
	}
	return out
}

func (f *FSM) applyLog(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := DecodeCommand(l.Data)
	if err != nil {
		return &Result{Status: StatusInvalid, Detail: err.Error()}
	}
	return f.ApplyCommand(l.Index, cmd)
}

// ApplyCommand applies cmd as the log entry at index. It is exported for
// tests and benchmarks that drive the state machine without raft; in
// production only Apply calls it.
func (f *FSM) ApplyCommand(index uint64, cmd *Command) *Result {
	switch cmd.Op {
	case OpNoop:
		return &Result{Status: StatusOK}
	case OpExpire:
		return f.expire(cmd.At, cmd.Before)
	}
	if err := f.limits.ValidSessionID(cmd.Session); err != nil {
		return &Result{Status: StatusInvalid, Detail: err.Error()}
	}
	cur, _ := f.Get(cmd.Session)
	if cmd.Op == OpAppendMessages {
		// A replayed append succeeds whatever IfVersion says: the client is
		// retrying a write that already happened.
		return f.appendMessages(index, cur, cmd)
	}
	if r := checkVersion(cur, cmd); r != nil {
		return r
	}
	switch cmd.Op {
	case OpMergeFields, OpPatchFields, OpPutField, OpDeleteField:
		return f.writeFields(index, cur, cmd)
	case OpSetAlarm:
		return f.setAlarm(index, cur, cmd)
	case OpDeleteAlarm:
		return f.deleteAlarm(index, cur, cmd)
	case OpFireAlarm:
		return f.fireAlarm(index, cur, cmd)
	case OpAlarmDelivered:
		return f.markDelivered(cur, cmd)
	case OpSetExpiry:
		if cur == nil {
			return &Result{Status: StatusNotFound, Detail: "session not found"}
		}
		if cmd.TTL < 0 || cmd.Expires < 0 || (cmd.TTL > 0 && cmd.Expires > 0) {
			return &Result{Status: StatusInvalid, Detail: "an expiry is a ttl or a time, not both, and not negative"}
		}
		s, _ := next(index, cur, cmd)
		s.ttl, s.expiresAt = cmd.TTL, cmd.Expires
		f.put(cmd.Session, s)
		return &Result{Status: StatusOK, Changed: true, Version: index, Session: s}
	case OpDeleteSession:
		if cur == nil {
			return &Result{Status: StatusNotFound, Detail: "session not found"}
		}
		f.bury(cur, cmd.At)
		f.put(cmd.Session, nil)
		delete(f.msgIndex, cmd.Session)
		return &Result{Status: StatusOK, Changed: true, Version: index}
	}
	return &Result{Status: StatusInvalid, Detail: "unknown command " + cmd.Op.String()}
}

func versionOf(s *Session) uint64 {
	if s == nil {
		return 0
	}
	return s.Version
}

func checkVersion(cur *Session, cmd *Command) *Result {
	if cmd.HasIfVersion && cmd.IfVersion != versionOf(cur) {
		return &Result{Status: StatusVersionMismatch, Version: versionOf(cur), Session: cur,
			Detail: "session version does not match"}
	}
	return nil
}

// next returns the session a write at index builds on: a copy of cur, or a
// new session stamped with the command's time.
func next(index uint64, cur *Session, cmd *Command) (*Session, bool) {
	if cur == nil {
		return &Session{ID: cmd.Session, CreatedAt: cmd.At, UpdatedAt: cmd.At, Version: index, created: index}, true
	}
	s := cur.clone()
	s.UpdatedAt = cmd.At
	s.Version = index
	return s, false
}

// expire removes the sessions due at time at: those whose own expiry has
// come, and, when before is set, those without one last written before it.
func (f *FSM) expire(at, before int64) *Result {
	var doomed []string
	f.mu.RLock()
	for _, b := range f.buckets {
		for id, s := range b.sessions {
			if expired(s, at, before) {
				doomed = append(doomed, id)
			}
		}
	}
	f.mu.RUnlock()
	for _, id := range doomed {
		f.put(id, nil)
		delete(f.msgIndex, id)
	}
	return &Result{Status: StatusOK, Changed: len(doomed) > 0, Expired: len(doomed)}
}

// timedOf is 1 for a session the sweeps must look at even without
// --session-ttl: one with an expiry of its own, a pending alarm, or a fire
// not yet delivered.
func timedOf(s *Session) int64 {
	if s == nil {
		return 0
	}
	if _, own := s.ExpiresAt(); own || len(s.alarms) > 0 {
		return 1
	}
	for i := range s.fired {
		if !s.fired[i].Delivered {
			return 1
		}
	}
	return 0
}

func expired(s *Session, at, before int64) bool {
	if exp, own := s.ExpiresAt(); own {
		return exp <= at
	}
	return before > 0 && s.UpdatedAt < before
}

// AnyExpired reports whether an OpExpire at time at with before would
// remove anything, so a leader proposes one only when it would. Safe from
// any goroutine.
func (f *FSM) AnyExpired(at, before int64) bool {
	if before <= 0 && f.timed.Load() == 0 {
		return false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, b := range f.buckets {
		for _, s := range b.sessions {
			if expired(s, at, before) {
				return true
			}
		}
	}
	return false
}

// Precheck reports, without changing anything, a failure cmd is certain to
// meet against the current state: a version condition that does not hold,
// or a delete of (or an expiry for) a session or field that does not
// exist. nil means cmd may
// succeed; Apply decides. The HTTP layer uses it to answer such requests
// without appending a log entry: a failed conditional write is a read, and
// on a state read linearizably it is answered exactly as Apply would have.
// Appends are never prechecked (a replay succeeds whatever its condition).
// Safe to call concurrently with Apply.
func (f *FSM) Precheck(cmd *Command) *Result {
	if !Prechecked(cmd) || f.limits.ValidSessionID(cmd.Session) != nil {
		return nil
	}
	cur, _ := f.Get(cmd.Session)
	if r := checkVersion(cur, cmd); r != nil {
		return r
	}
	switch cmd.Op {
	case OpDeleteSession, OpSetExpiry, OpSetAlarm:
		if cur == nil {
			return &Result{Status: StatusNotFound, Detail: "session not found"}
		}
	case OpDeleteAlarm:
		if cur == nil {
			return &Result{Status: StatusNotFound, Detail: "session not found"}
		}
		if _, ok := cur.alarms[cmd.Name]; !ok {
			return &Result{Status: StatusNotFound, Version: versionOf(cur), Session: cur, Detail: "alarm not found"}
		}
	case OpDeleteField:
		if cur == nil {
			return &Result{Status: StatusNotFound, Detail: "session not found"}
		}
		if _, ok := cur.Field(cmd.Field); !ok {
			return &Result{Status: StatusNotFound, Version: versionOf(cur), Session: cur, Detail: "field not found"}
		}
	}
	return nil
}

// Prechecked reports whether Precheck can ever fail cmd, so callers skip
// the check for commands it would pass anyway.
func Prechecked(cmd *Command) bool {
	switch cmd.Op {
	case OpDeleteField, OpDeleteSession, OpSetExpiry, OpSetAlarm, OpDeleteAlarm:
		return true
	case OpMergeFields, OpPatchFields, OpPutField:
		return cmd.HasIfVersion
	}
	return false
}
