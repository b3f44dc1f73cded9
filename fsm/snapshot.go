package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/hashicorp/raft"
)

// Snapshot stream format, version 3:
//
//	magic "SSNP", version byte, applied index (8 bytes big-endian),
//	then records: uvarint length + session record, ended by a zero length,
//	then records: uvarint length + tombstone record, ended by a zero length.
//
// A session record holds id, createdAt, updatedAt, version, the created and
// fields versions, its own expiry (ttl, expiresAt), its pending alarms
// (sorted by name) and fired alarms (oldest first), the fields (sorted by name) and the messages in seq
// order, each with the version that appended it. Sessions are written
// bucket by bucket, sorted by id, so equal states produce equal snapshots. A
// tombstone record holds a deleted session's id, the delete's time and its
// message ids, sorted. Version 2 session records have no versions beyond the
// session's own (they restore as 0, unknown); version 1 streams have no
// tombstone records either.
var snapshotMagic = []byte("SSNP")

const snapshotVersion byte = 3

// Snapshot freezes the current buckets; Persist streams them while Apply goes
// on writing to copies. It runs on the apply goroutine and costs O(buckets).
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &snapshot{applied: f.applied.Load(), tombs: f.liveTombs()}
	for i, b := range f.buckets {
		b.frozen = true
		s.buckets[i] = b
	}
	return s, nil
}

type snapshot struct {
	applied uint64
	buckets [bucketCount]*bucket
	tombs   []tombEntry // immutable tombstones
}

// Persist writes the snapshot to sink. Safe to run concurrently with Apply.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// write streams the snapshot to w.
func (s *snapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	e := encoder{buf: make([]byte, 0, 4096)}
	e.buf = append(e.buf, snapshotMagic...)
	e.byte(snapshotVersion)
	e.fixed64(s.applied)
	if _, err := bw.Write(e.buf); err != nil {
		return err
	}
	var rec, lenBuf encoder
	record := func() error {
		lenBuf.reset()
		lenBuf.uvarint(uint64(len(rec.buf)))
		if _, err := bw.Write(lenBuf.buf); err != nil {
			return err
		}
		_, err := bw.Write(rec.buf)
		return err
	}
	for _, b := range s.buckets {
		ids := make([]string, 0, len(b.sessions))
		for id := range b.sessions {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			rec.reset()
			encodeSession(&rec, b.sessions[id], true)
			if err := record(); err != nil {
				return err
			}
		}
	}
	if err := bw.WriteByte(0); err != nil {
		return err
	}
	for _, te := range s.tombs {
		rec.reset()
		encodeTomb(&rec, te)
		if err := record(); err != nil {
			return err
		}
	}
	if err := bw.WriteByte(0); err != nil {
		return err
	}
	return bw.Flush()
}

// Release is a no-op: frozen buckets are garbage once nobody holds them.
func (s *snapshot) Release() {}

// encodeSession writes a session record; withVersions adds the created,
// fields and message versions of snapshot format 3, which the result codec
// leaves out so that its wire format stays what older nodes read.
func encodeSession(e *encoder, s *Session, withVersions bool) {
	e.string(s.ID)
	e.varint(s.CreatedAt)
	e.varint(s.UpdatedAt)
	e.uvarint(s.Version)
	if withVersions {
		e.uvarint(s.created)
		e.uvarint(s.fieldsVersion)
		e.varint(s.ttl)
		e.varint(s.expiresAt)
		encodeAlarms(e, s)
	}
	names := s.FieldNames()
	e.uvarint(uint64(len(names)))
	for _, k := range names {
		e.string(k)
		e.bytes(s.fields[k])
	}
	e.uvarint(uint64(s.messages.len()))
	for i := range s.messages.len() {
		m := s.messages.at(i)
		e.string(m.ID)
		e.string(m.Role)
		e.string(m.Content)
		e.varint(m.CreatedAt)
		e.bytes(m.Meta)
		if withVersions {
			e.uvarint(m.Version)
		}
	}
}

func decodeSession(b []byte, withVersions bool) (*Session, error) {
	d := decoder{buf: b}
	s := &Session{ID: d.string(), CreatedAt: d.varint(), UpdatedAt: d.varint(), Version: d.uvarint()}
	if withVersions {
		s.created, s.fieldsVersion = d.uvarint(), d.uvarint()
		s.ttl, s.expiresAt = d.varint(), d.varint()
		decodeAlarms(&d, s)
	}
	nf := d.count(2)
	s.fields = make(map[string]json.RawMessage, nf)
	for i := 0; i < nf && d.err == nil; i++ {
		k := d.string()
		v := d.bytes()
		s.fields[k] = v
		s.fieldBytes += len(k) + len(v)
	}
	nm := d.count(5)
	if nm > 0 {
		// The record's size bounds the messages' bytes: one chunk for all
		// (up to maxRestoreChunk, which keeps offsets in a chunk small).
		s.messages = newMessageLog(nm, min(len(d.buf), maxRestoreChunk))
	}
	for i := 0; i < nm && d.err == nil; i++ {
		// The strings alias the record only until appended copies them.
		m := Message{Seq: uint64(i + 1), ID: d.view(), Role: d.view(),
			Content: d.view(), CreatedAt: d.varint(), Meta: d.raw()}
		if withVersions {
			m.Version = d.uvarint()
		}
		s.messages = s.messages.appended(&m)
		s.msgBytes += messageSize(&m)
	}
	if d.err == nil && len(d.buf) != 0 {
		d.err = errors.New("fsm: trailing bytes in session record")
	}
	return s, d.err
}

// Restore replaces the whole state with the snapshot read from rc. The new
// state is built on the side and swapped in only when the stream decoded
// completely, so a bad snapshot leaves the FSM as it was.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 256<<10)
	head := make([]byte, len(snapshotMagic)+1+8)
	if _, err := io.ReadFull(br, head); err != nil {
		return fmt.Errorf("fsm: read snapshot header: %w", err)
	}
	if string(head[:4]) != string(snapshotMagic) {
		return errors.New("fsm: not a sessiond snapshot")
	}
	version := head[4]
	if version < 1 || version > snapshotVersion {
		return fmt.Errorf("fsm: unknown snapshot version %d", head[4])
	}
	hd := decoder{buf: head[5:]}
	applied := hd.fixed64()

	var buckets [bucketCount]*bucket
	for i := range buckets {
		buckets[i] = &bucket{sessions: map[string]*Session{}}
	}
	index := map[string]*idIndex{}
	var total, timed int64
	var rec bytes.Buffer
	for {
		more, err := readRecord(br, &rec)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		s, err := decodeSession(rec.Bytes(), version >= 3)
		if err != nil {
			return fmt.Errorf("fsm: decode snapshot: %w", err)
		}
		ids := newIDIndex(s.messages.len())
		for i := range s.messages.len() {
			ids.add(s.messages, s.messages.id(i), uint64(i+1))
		}
		index[s.ID] = ids
		buckets[bucketOf(s.ID)].sessions[s.ID] = s
		total += s.Size()
		timed += timedOf(s)
	}

	tombs := map[string]*tombstone{}
	var queue []tombRef
	for version >= 2 {
		more, err := readRecord(br, &rec)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		te, err := decodeTomb(rec.Bytes())
		if err != nil {
			return fmt.Errorf("fsm: decode snapshot: %w", err)
		}
		tombs[te.session] = te.t
		queue = append(queue, tombRef{session: te.session, at: te.t.at})
	}

	f.mu.Lock()
	f.buckets = buckets
	f.msgIndex = index
	f.mu.Unlock()
	f.bytes.Store(total)
	f.timed.Store(timed)
	f.tombs, f.tombQueue = tombs, queue
	f.publishApplied(applied)
	f.watch.notifyAll()
	return nil
}

// readRecord reads one length-prefixed record into rec; false means the
// zero length that ends a section.
func readRecord(br *bufio.Reader, rec *bytes.Buffer) (bool, error) {
	n, err := readUvarint(br)
	if err != nil {
		return false, fmt.Errorf("fsm: read snapshot: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	// The buffer grows as bytes arrive, so a corrupt length ends in EOF
	// rather than a huge allocation up front.
	rec.Reset()
	if n > math.MaxInt64 {
		return false, fmt.Errorf("fsm: snapshot record length %d is corrupt", n)
	}
	if _, err := io.CopyN(rec, br, int64(n)); err != nil {
		return false, fmt.Errorf("fsm: read snapshot: %w", unexpectedEOF(err))
	}
	return true, nil
}

func readUvarint(br *bufio.Reader) (uint64, error) {
	v, err := binary.ReadUvarint(br)
	return v, unexpectedEOF(err)
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func encodeAlarms(e *encoder, s *Session) {
	names := make([]string, 0, len(s.alarms))
	for n := range s.alarms {
		names = append(names, n)
	}
	sort.Strings(names)
	e.uvarint(uint64(len(names)))
	for _, n := range names {
		encodeAlarm(e, s.alarms[n])
	}
	e.uvarint(uint64(len(s.fired)))
	for _, fa := range s.fired {
		encodeAlarm(e, fa.Alarm)
		e.varint(fa.FiredAt)
		e.uvarint(fa.Version)
		if fa.Delivered {
			e.byte(1)
		} else {
			e.byte(0)
		}
	}
	e.uvarint(s.firedDropped)
}

func encodeAlarm(e *encoder, a Alarm) {
	e.string(a.Name)
	e.varint(a.At)
	e.bytes(a.Payload)
	e.uvarint(a.Set)
}

func decodeAlarms(d *decoder, s *Session) {
	if n := d.count(4); n > 0 {
		s.alarms = make(map[string]Alarm, n)
		for i := 0; i < n && d.err == nil; i++ {
			a := decodeAlarm(d)
			s.alarms[a.Name] = a
		}
	}
	if n := d.count(8); n > 0 {
		s.fired = make([]FiredAlarm, n)
		for i := 0; i < n && d.err == nil; i++ {
			s.fired[i] = FiredAlarm{Alarm: decodeAlarm(d), FiredAt: d.varint(), Version: d.uvarint(), Delivered: d.byte() == 1}
		}
	}
	s.firedDropped = d.uvarint()
}

func decodeAlarm(d *decoder) Alarm {
	return Alarm{Name: d.string(), At: d.varint(), Payload: d.bytes(), Set: d.uvarint()}
}
