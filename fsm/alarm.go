package fsm

import (
	"encoding/json"
	"fmt"
	"sort"
)

// Alarms: a session may hold named alarms, each due at a time, with a JSON
// payload. When one is due, the shard leader proposes OpFireAlarm; firing
// is therefore one entry in the replicated log, whichever leader proposes
// it and however often (a fire for an alarm already fired, or set again
// since, changes nothing). A fired alarm moves to the session's fired list,
// where change streams see it and a webhook delivery finds it until
// OpAlarmDelivered marks it delivered. The fired list keeps the most recent
// MaxFiredAlarms.

// MaxFiredAlarms bounds the fired alarms a session remembers.
const MaxFiredAlarms = 64

// Alarm is one pending alarm of a session.
type Alarm struct {
	Name    string          `json:"name"`
	At      int64           `json:"at"` // unix ms when it is due
	Payload json.RawMessage `json:"payload,omitempty"`
	// Set is the version that set it; a fire names it, so a fire proposed
	// for an earlier setting of the same name does nothing.
	Set uint64 `json:"set"`
}

// FiredAlarm is an alarm that fired.
type FiredAlarm struct {
	Alarm
	FiredAt   int64  `json:"firedAt"` // unix ms, the leader's time of the fire
	Version   uint64 `json:"version"` // the version of the fire
	Delivered bool   `json:"delivered"`
}

// DueAlarm names a pending alarm whose time has come.
type DueAlarm struct {
	Session string
	Name    string
	Set     uint64
}

// Alarms returns the session's pending alarms sorted by time, then name.
// The slice is the caller's.
func (s *Session) Alarms() []Alarm {
	out := make([]Alarm, 0, len(s.alarms))
	for _, a := range s.alarms {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].At != out[j].At {
			return out[i].At < out[j].At
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// FiredAlarms returns the alarms fired most recently, oldest first. The
// slice is shared and must not be modified.
func (s *Session) FiredAlarms() []FiredAlarm { return s.fired[:len(s.fired):len(s.fired)] }

// FiredForgottenUpTo is the version of the last fire dropped from the fired
// list (0: none): a change stream cannot replay fires at or before it.
func (s *Session) FiredForgottenUpTo() uint64 { return s.firedDropped }

func (f *FSM) setAlarm(index uint64, cur *Session, cmd *Command) *Result {
	if cur == nil {
		return &Result{Status: StatusNotFound, Detail: "session not found"}
	}
	if err := ValidAlarmName(cmd.Name); err != nil {
		return &Result{Status: StatusInvalid, Detail: err.Error()}
	}
	if cmd.Due <= 0 {
		return &Result{Status: StatusInvalid, Detail: "an alarm needs a time"}
	}
	payload := cmd.Value
	if len(payload) > f.limits.maxPayloadBytes() {
		return &Result{Status: StatusTooLarge, Version: versionOf(cur), Session: cur,
			Detail: fmt.Sprintf("an alarm payload is at most %d bytes", f.limits.maxPayloadBytes())}
	}
	if len(payload) > 0 {
		p, err := compactJSON(payload)
		if err != nil {
			return &Result{Status: StatusInvalid, Detail: "alarm payload is not valid JSON"}
		}
		payload = p
	}
	if _, exists := cur.alarms[cmd.Name]; !exists && len(cur.alarms) >= f.limits.maxAlarms() {
		return &Result{Status: StatusTooLarge, Version: versionOf(cur), Session: cur,
			Detail: fmt.Sprintf("a session holds at most %d alarms", f.limits.maxAlarms())}
	}
	s, _ := next(index, cur, cmd)
	s.alarms = make(map[string]Alarm, len(cur.alarms)+1)
	for k, v := range cur.alarms {
		s.alarms[k] = v
	}
	s.alarms[cmd.Name] = Alarm{Name: cmd.Name, At: cmd.Due, Payload: payload, Set: index}
	f.put(cmd.Session, s)
	return &Result{Status: StatusOK, Changed: true, Version: index, Session: s}
}

func (f *FSM) deleteAlarm(index uint64, cur *Session, cmd *Command) *Result {
	if cur == nil {
		return &Result{Status: StatusNotFound, Detail: "session not found"}
	}
	if _, ok := cur.alarms[cmd.Name]; !ok {
		return &Result{Status: StatusNotFound, Version: versionOf(cur), Session: cur, Detail: "alarm not found"}
	}
	s, _ := next(index, cur, cmd)
	s.alarms = make(map[string]Alarm, len(cur.alarms))
	for k, v := range cur.alarms {
		if k != cmd.Name {
			s.alarms[k] = v
		}
	}
	f.put(cmd.Session, s)
	return &Result{Status: StatusOK, Changed: true, Version: index, Session: s}
}

// fireAlarm fires alarm cmd.Name as set at version cmd.Set, if it is
// still pending as such and due at the command's time; otherwise nothing
// changes (another fire, or a new setting, came first).
func (f *FSM) fireAlarm(index uint64, cur *Session, cmd *Command) *Result {
	if cur == nil {
		return &Result{Status: StatusOK}
	}
	a, ok := cur.alarms[cmd.Name]
	if !ok || a.Set != cmd.Set || a.At > cmd.At {
		return &Result{Status: StatusOK, Version: versionOf(cur), Session: cur}
	}
	// A fire is not a client's write: the session's last-write time (and
	// so a ttl counted from it) stays.
	s := cur.clone()
	s.Version = index
	s.alarms = make(map[string]Alarm, len(cur.alarms))
	for k, v := range cur.alarms {
		if k != cmd.Name {
			s.alarms[k] = v
		}
	}
	fired := append(append(make([]FiredAlarm, 0, len(cur.fired)+1), cur.fired...),
		FiredAlarm{Alarm: a, FiredAt: cmd.At, Version: index})
	if drop := len(fired) - MaxFiredAlarms; drop > 0 {
		s.firedDropped = fired[drop-1].Version
		fired = fired[drop:]
	}
	s.fired = fired
	f.put(cmd.Session, s)
	return &Result{Status: StatusOK, Changed: true, Version: index, Session: s}
}

// markDelivered records that the fire at version cmd.Set of alarm cmd.Name
// reached the webhook. It does not change the session's version: nothing a
// client sees changed.
func (f *FSM) markDelivered(cur *Session, cmd *Command) *Result {
	if cur == nil {
		return &Result{Status: StatusOK}
	}
	for i, fa := range cur.fired {
		if fa.Name == cmd.Name && fa.Version == cmd.Set && !fa.Delivered {
			s := cur.clone()
			s.fired = append([]FiredAlarm{}, cur.fired...)
			s.fired[i].Delivered = true
			f.put(cmd.Session, s)
			return &Result{Status: StatusOK, Changed: true, Version: versionOf(cur), Session: s}
		}
	}
	return &Result{Status: StatusOK, Version: versionOf(cur), Session: cur}
}

// DueAlarms lists up to limit pending alarms due at time at. Safe from any
// goroutine.
func (f *FSM) DueAlarms(at int64, limit int) []DueAlarm {
	if f.timed.Load() == 0 {
		return nil
	}
	var out []DueAlarm
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, b := range f.buckets {
		for id, s := range b.sessions {
			for _, a := range s.alarms {
				if a.At <= at {
					out = append(out, DueAlarm{Session: id, Name: a.Name, Set: a.Set})
					if len(out) >= limit {
						return out
					}
				}
			}
		}
	}
	return out
}

// UndeliveredAlarm is a fired alarm the webhook has not acknowledged yet.
type UndeliveredAlarm struct {
	Session string
	FiredAlarm
}

// UndeliveredAlarms lists up to limit fired alarms not yet marked
// delivered. Safe from any goroutine.
func (f *FSM) UndeliveredAlarms(limit int) []UndeliveredAlarm {
	if f.timed.Load() == 0 {
		return nil
	}
	var out []UndeliveredAlarm
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, b := range f.buckets {
		for id, s := range b.sessions {
			for _, fa := range s.fired {
				if !fa.Delivered {
					out = append(out, UndeliveredAlarm{Session: id, FiredAlarm: fa})
					if len(out) >= limit {
						return out
					}
				}
			}
		}
	}
	return out
}
