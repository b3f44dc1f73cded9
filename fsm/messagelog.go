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
// Here every message's bytes sit back to back in byte chunks and its
// record holds offsets, so each session has pointer-free arrays.
//
// The bytes go into chunks of at most maxChunk (or one message, if larger)
// rather than into one array: an array that grows is copied each time it
// outgrows its capacity, and a long session's messages were copied again
// and again into ever larger fresh arrays, half of what appending a message
// cost. A full chunk is left as it is and a new one started.
//
// A messageLog value is immutable once published, like the Session holding
// it: with appends only writes past its own length into arrays that it may
// share with older values, which never read that far. The strings and
// slices a Message read from it carries point into those arrays, which are
// never written below their published length, so they stay valid and
// unchanged; a holder that keeps one for longer than the session (a
// tombstone, an id kept apart by the index for its clashing hash) must copy
// it, or it keeps the whole chunk alive.
type messageLog struct {
	recs []messageRec // message seq-1
	// chunks hold the id, role, content and meta of every message. Each
	// is allocated at its full length and never resliced, so a newer
	// value sharing this array of chunks never changes an element an
	// older value reads; used says how much of the last one is taken.
	chunks [][]byte
	used   int
}

// maxChunk is the size of a long session's chunks: the largest allocation
// the Go runtime still serves from its size classes rather than from pages
// of its own.
const maxChunk = 32 << 10

// firstChunk is the least a session's first chunk holds; each chunk after
// it is twice the size of the last, up to maxChunk.
const firstChunk = 512

// maxRestoreChunk bounds the one chunk a restored session's messages are
// read into; a larger session continues in chunks of maxChunk.
const maxRestoreChunk = 64 << 20

// messageRec locates one message's bytes in messageLog.chunks.
type messageRec struct {
	createdAt int64
	version   uint64
	chunk     uint32 // index in chunks
	off       uint32 // start of the id in the chunk; role, content and meta follow
	idLen     uint32
	roleLen   uint32
	content   uint32 // length of the content
	metaLen   uint32
}

// newMessageLog returns an empty log with room for n messages and size
// bytes of them in its first chunk, for a restore that knows both.
func newMessageLog(n, size int) messageLog {
	l := messageLog{recs: make([]messageRec, 0, n)}
	if size > 0 {
		l.chunks = [][]byte{make([]byte, size)}
	}
	return l
}

// len is the number of messages, also the highest seq.
func (l messageLog) len() int { return len(l.recs) }

// at returns message i (seq i+1), pointing into the log's bytes.
func (l messageLog) at(i int) Message {
	r := &l.recs[i]
	m := Message{Seq: uint64(i + 1), CreatedAt: r.createdAt, Version: r.version}
	c := l.chunks[r.chunk]
	off := r.off
	m.ID = str(c, off, r.idLen)
	off += r.idLen
	m.Role = str(c, off, r.roleLen)
	off += r.roleLen
	m.Content = str(c, off, r.content)
	off += r.content
	if r.metaLen > 0 {
		end := off + r.metaLen
		m.Meta = json.RawMessage(c[off:end:end])
	}
	return m
}

// id returns message i's id, pointing into the log's bytes.
func (l messageLog) id(i int) string {
	r := &l.recs[i]
	return str(l.chunks[r.chunk], r.off, r.idLen)
}

func str(chunk []byte, off, n uint32) string {
	if n == 0 {
		return ""
	}
	return unsafe.String(&chunk[off], int(n))
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
	n := len(m.ID) + len(m.Role) + len(m.Content) + len(m.Meta)
	if len(l.chunks) == 0 || len(l.chunks[len(l.chunks)-1])-l.used < n {
		size := firstChunk
		if k := len(l.chunks); k > 0 {
			size = min(2*len(l.chunks[k-1]), maxChunk)
		}
		l.chunks = append(l.chunks, make([]byte, max(size, n)))
		l.used = 0
	}
	c := len(l.chunks) - 1
	l.recs = append(l.recs, messageRec{
		createdAt: m.CreatedAt, version: m.Version,
		chunk: uint32(c), off: uint32(l.used),
		idLen: uint32(len(m.ID)), roleLen: uint32(len(m.Role)),
		content: uint32(len(m.Content)), metaLen: uint32(len(m.Meta)),
	})
	b := l.chunks[c][l.used:]
	b = b[copy(b, m.ID):]
	b = b[copy(b, m.Role):]
	b = b[copy(b, m.Content):]
	copy(b, m.Meta)
	l.used += n
	return l
}
