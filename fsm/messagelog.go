package fsm

import (
	"encoding/json"
	"unsafe"
)

// messageLog holds a session's messages in memory the garbage collector
// does not have to look into. Stored messages are most of a node's heap,
// and as separate strings (an id, a role, a content and a meta each) they
// made every collection cycle follow four pointers per message: with a few
// hundred megabytes of messages, marking took a fifth of a busy node's CPU.
// Here every message's bytes sit back to back in one byte slice and its
// record holds offsets, so each session has two pointer-free arrays.
//
// A messageLog value is immutable once published, like the Session holding
// it: with appends only writes past its own length into arrays that it may
// share with older values, which never read that far. The strings and
// slices a Message read from it carries point into those arrays, which are
// never written below their published length, so they stay valid and
// unchanged; a holder that keeps one for longer than the session (a
// tombstone, an id kept apart by the index for its clashing hash) must copy
// it, or it keeps the whole array alive.
type messageLog struct {
	recs []messageRec // message seq-1
	text []byte       // id, role, content and meta of every message
}

// messageRec locates one message's bytes in messageLog.text.
type messageRec struct {
	createdAt int64
	version   uint64
	off       uint64 // start of the id; role, content and meta follow
	idLen     uint32
	roleLen   uint32
	content   uint32 // length of the content
	metaLen   uint32
}

// len is the number of messages, also the highest seq.
func (l messageLog) len() int { return len(l.recs) }

// at returns message i (seq i+1), pointing into the log's bytes.
func (l messageLog) at(i int) Message {
	r := &l.recs[i]
	m := Message{Seq: uint64(i + 1), CreatedAt: r.createdAt, Version: r.version}
	off := r.off
	m.ID = l.str(off, r.idLen)
	off += uint64(r.idLen)
	m.Role = l.str(off, r.roleLen)
	off += uint64(r.roleLen)
	m.Content = l.str(off, r.content)
	off += uint64(r.content)
	if r.metaLen > 0 {
		end := off + uint64(r.metaLen)
		m.Meta = json.RawMessage(l.text[off:end:end])
	}
	return m
}

// id returns message i's id, pointing into the log's bytes.
func (l messageLog) id(i int) string {
	r := &l.recs[i]
	return l.str(r.off, r.idLen)
}

func (l messageLog) str(off uint64, n uint32) string {
	if n == 0 {
		return ""
	}
	return unsafe.String(&l.text[off], int(n))
}

// slice returns messages [from, to), pointing into the log's bytes.
func (l messageLog) slice(from, to int) []Message {
	if from >= to {
		return nil
	}
	out := make([]Message, to-from)
	for i := range out {
		out[i] = l.at(from + i)
	}
	return out
}

// appended returns the log with m added. The receiver is unchanged; the
// result may share its arrays (see messageLog).
func (l messageLog) appended(m *Message) messageLog {
	l.recs = append(l.recs, messageRec{
		createdAt: m.CreatedAt, version: m.Version, off: uint64(len(l.text)),
		idLen: uint32(len(m.ID)), roleLen: uint32(len(m.Role)),
		content: uint32(len(m.Content)), metaLen: uint32(len(m.Meta)),
	})
	l.text = append(l.text, m.ID...)
	l.text = append(l.text, m.Role...)
	l.text = append(l.text, m.Content...)
	l.text = append(l.text, m.Meta...)
	return l
}
