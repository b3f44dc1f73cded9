package fsm

import (
	"errors"
	"sort"
	"strings"
)

// Tombstones: the message ids of deleted sessions, kept for a while.
//
// An append is retried with the same message ids after a timeout, and the
// session's stored messages make the retry harmless. But the network can
// deliver the first attempt much later (a partition heals and TCP
// retransmits a request whose client gave up long ago). If the session was
// deleted in between, nothing would remember the ids and the stale request
// would append the message again, into the next session of that id. So a
// delete keeps the deleted session's message ids, and an append of one of
// them within TombstoneRetention of the delete is refused as an id conflict.

// TombstoneRetention is how long, in command time, a deleted session's
// message ids stay reserved. It is a constant, not a setting: every replica
// must decide the same. TCP gives up on undelivered data well within it.
const TombstoneRetention int64 = 15 * 60 * 1000 // ms

type tombstone struct {
	ids map[string]struct{}
	at  int64 // command time (Unix ms) of the latest delete
}

// tombRef queues tombstones in the order they were written, so expired ones
// are dropped from the front in O(1) per delete.
type tombRef struct {
	session string
	at      int64
}

// bury records the message ids of a session being deleted at time at.
func (f *FSM) bury(s *Session, at int64) {
	f.sweepTombs(at)
	if s == nil || s.messages.len() == 0 {
		return
	}
	// Tombstones are immutable once published, so a snapshot can stream
	// them while Apply goes on: a second delete builds a new one.
	t := &tombstone{ids: make(map[string]struct{}, s.messages.len()), at: at}
	if old := f.tombs[s.ID]; old != nil && at-old.at <= TombstoneRetention {
		for id := range old.ids {
			t.ids[id] = struct{}{}
		}
		t.at = max(old.at, at)
	}
	for i := range s.messages.len() {
		t.ids[strings.Clone(s.messages.id(i))] = struct{}{} // see messageLog
	}
	f.tombs[s.ID] = t
	f.tombQueue = append(f.tombQueue, tombRef{session: s.ID, at: t.at})
}

// sweepTombs drops tombstones older than TombstoneRetention at time now.
func (f *FSM) sweepTombs(now int64) {
	for len(f.tombQueue) > 0 && now-f.tombQueue[0].at > TombstoneRetention {
		ref := f.tombQueue[0]
		f.tombQueue = f.tombQueue[1:]
		if t := f.tombs[ref.session]; t != nil && t.at == ref.at {
			delete(f.tombs, ref.session) // not re-buried since
		}
	}
	if len(f.tombQueue) == 0 {
		f.tombQueue = nil // let the backing array go
	}
}

// buried returns the first id of msgs that a recent delete reserved.
func (f *FSM) buried(session string, msgs []NewMessage, at int64) (string, bool) {
	t := f.tombs[session]
	if t == nil || at-t.at > TombstoneRetention {
		return "", false
	}
	for _, m := range msgs {
		if _, ok := t.ids[m.ID]; ok {
			return m.ID, true
		}
	}
	return "", false
}

// tombEntry is a tombstone as a snapshot carries it.
type tombEntry struct {
	session string
	t       *tombstone
}

// liveTombs lists the tombstones in queue order, each once.
func (f *FSM) liveTombs() []tombEntry {
	var out []tombEntry
	for _, ref := range f.tombQueue {
		if t := f.tombs[ref.session]; t != nil && t.at == ref.at {
			out = append(out, tombEntry{ref.session, t})
		}
	}
	return out
}

func encodeTomb(e *encoder, te tombEntry) {
	e.string(te.session)
	e.varint(te.t.at)
	ids := make([]string, 0, len(te.t.ids))
	for id := range te.t.ids {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	e.uvarint(uint64(len(ids)))
	for _, id := range ids {
		e.string(id)
	}
}

func decodeTomb(b []byte) (tombEntry, error) {
	d := decoder{buf: b}
	te := tombEntry{session: d.string(), t: &tombstone{at: d.varint()}}
	n := d.count(1)
	te.t.ids = make(map[string]struct{}, n)
	for i := 0; i < n && d.err == nil; i++ {
		te.t.ids[d.string()] = struct{}{}
	}
	if d.err == nil && len(d.buf) != 0 {
		d.err = errors.New("fsm: trailing bytes in tombstone record")
	}
	return te, d.err
}
