package fsm

import (
	"encoding/json"
	"errors"
)

// Results travel between nodes when a node that does not lead a shard
// proposes a write there on a client's behalf (see package shard). The
// encoding reuses the command codec's primitives.

const (
	resultCreated = 1 << iota
	resultChanged
	resultHasSession  // Result.Session was set
	resultWithSession // and travels in full
)

// EncodeResult encodes r for the node that proposed op. The session after
// the command travels in full except for appends: an append's response
// needs only its stored messages, and a long session would make every
// forwarded append as large as the session.
func EncodeResult(op Op, r *Result) []byte {
	e := encoder{buf: make([]byte, 0, 64)}
	e.byte(byte(r.Status))
	e.uvarint(r.Version)
	var flags byte
	if r.Created {
		flags |= resultCreated
	}
	if r.Changed {
		flags |= resultChanged
	}
	if r.Session != nil {
		flags |= resultHasSession
		if op != OpAppendMessages {
			flags |= resultWithSession
		}
	}
	e.byte(flags)
	e.uvarint(uint64(r.Expired))
	e.string(r.Detail)
	e.uvarint(uint64(len(r.Messages)))
	for i := range r.Messages {
		m := &r.Messages[i]
		e.uvarint(m.Seq)
		e.string(m.ID)
		e.string(m.Role)
		e.string(m.Content)
		e.varint(m.CreatedAt)
		e.bytes(m.Meta)
	}
	if flags&resultWithSession != 0 {
		var se encoder
		encodeSession(&se, r.Session, false)
		e.bytes(se.buf)
	} else if flags&resultHasSession != 0 {
		e.string(r.Session.ID)
	}
	return e.buf
}

// DecodeResult decodes what EncodeResult wrote. When the session did not
// travel, Result.Session is a stand-in holding only the session id and the
// result's version: enough to tell that the session exists.
func DecodeResult(b []byte) (*Result, error) {
	d := decoder{buf: b}
	r := &Result{Status: Status(d.byte()), Version: d.uvarint()}
	flags := d.byte()
	r.Created, r.Changed = flags&resultCreated != 0, flags&resultChanged != 0
	r.Expired = int(d.uvarint())
	r.Detail = d.string()
	if n := d.count(6); n > 0 {
		r.Messages = make([]Message, n)
		for i := 0; i < n && d.err == nil; i++ {
			r.Messages[i] = Message{Seq: d.uvarint(), ID: d.string(), Role: d.string(),
				Content: d.string(), CreatedAt: d.varint(), Meta: d.bytes()}
		}
	}
	switch {
	case flags&resultWithSession != 0:
		sb := d.bytes()
		if d.err == nil {
			s, err := decodeSession(sb, false)
			if err != nil {
				return nil, err
			}
			r.Session = s
		}
	case flags&resultHasSession != 0:
		r.Session = &Session{ID: d.string(), Version: r.Version, fields: map[string]json.RawMessage{}}
	}
	if d.err == nil && len(d.buf) != 0 {
		d.err = errors.New("fsm: trailing bytes in result")
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}
