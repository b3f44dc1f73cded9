package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// Op names a command.
type Op uint8

const (
	// OpNoop changes nothing. A new shard leader applies one so that its FSM
	// has caught up with every earlier term before it serves reads.
	OpNoop Op = iota + 1
	// OpAppendMessages appends a batch of messages, creating the session if
	// absent. Messages whose id is already stored are not appended again.
	OpAppendMessages
	// OpMergeFields merges Fields into the session's fields at the top level;
	// a null value deletes that field. Creates the session if absent.
	OpMergeFields
	// OpPatchFields applies Patch, an RFC 7396 JSON merge patch, to the
	// fields object. Creates the session if absent.
	OpPatchFields
	// OpPutField sets one field. Creates the session if absent.
	OpPutField
	// OpDeleteField removes one field.
	OpDeleteField
	// OpDeleteSession removes the session.
	OpDeleteSession
	// OpExpire removes every session whose own expiry (see OpSetExpiry) is
	// at or before At, and every session without one last written before
	// Before (unix ms; 0: none).
	OpExpire
	// OpSetExpiry gives the session an expiry of its own, overriding the
	// node's --session-ttl: TTL ms after its last write, or at ExpiresAt
	// (unix ms); both zero clears it.
	OpSetExpiry
	// OpSetAlarm sets alarm Name to fire at Due (unix ms) with Value as
	// its payload, replacing an alarm of that name.
	OpSetAlarm
	// OpDeleteAlarm removes pending alarm Name.
	OpDeleteAlarm
	// OpFireAlarm fires alarm Name if it is still pending as set at
	// version Set and due at At; otherwise it changes nothing.
	OpFireAlarm
	// OpAlarmDelivered marks the fire of alarm Name at version Set as
	// delivered to the webhook.
	OpAlarmDelivered
	opLimit
)

var opNames = [...]string{"", "noop", "append", "merge", "patch", "put-field", "delete-field", "delete", "expire", "set-expiry",
	"set-alarm", "delete-alarm", "fire-alarm", "alarm-delivered"}

func (o Op) String() string {
	if o > 0 && o < opLimit {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", o)
}

// NewMessage is a message as proposed, before the FSM numbers it.
type NewMessage struct {
	ID      string
	Role    string
	Content string
	Meta    json.RawMessage // optional JSON value
}

// Command is one replicated change. The leader fills in At and generated ids
// before proposing, so Apply is deterministic.
type Command struct {
	Op      Op
	Session string
	At      int64 // unix ms at the leader when proposed

	// IfVersion makes the command conditional when HasIfVersion is set: it
	// applies only if the session's current version equals IfVersion, where an
	// absent session has version 0.
	HasIfVersion bool
	IfVersion    uint64

	Messages []NewMessage               // OpAppendMessages
	Fields   map[string]json.RawMessage // OpMergeFields; nil value = JSON null
	Patch    json.RawMessage            // OpPatchFields: a JSON object
	Field    string                     // OpPutField, OpDeleteField
	Value    json.RawMessage            // OpPutField
	Before   int64                      // OpExpire
	TTL      int64                      // OpSetExpiry, ms
	Expires  int64                      // OpSetExpiry, unix ms
	Name     string                     // the alarm ops
	Due      int64                      // OpSetAlarm, unix ms
	Set      uint64                     // OpFireAlarm, OpAlarmDelivered
}

// formatVersion is the first byte of every encoded command. Decoders reject
// versions they do not know rather than guess.
const formatVersion byte = 1

const flagIfVersion = 1

// Encode returns the command's binary form: format version, op, flags, then
// the op's fields. Map keys are written in sorted order so equal commands
// encode to equal bytes.
func (c *Command) Encode() []byte {
	size := 32 + len(c.Session) + len(c.Patch) + len(c.Field) + len(c.Value)
	for i := range c.Messages {
		m := &c.Messages[i]
		size += 16 + len(m.ID) + len(m.Role) + len(m.Content) + len(m.Meta)
	}
	for k, v := range c.Fields {
		size += 8 + len(k) + len(v)
	}
	e := encoder{buf: make([]byte, 0, size)}
	e.byte(formatVersion)
	e.byte(byte(c.Op))
	var flags byte
	if c.HasIfVersion {
		flags |= flagIfVersion
	}
	e.byte(flags)
	e.string(c.Session)
	e.varint(c.At)
	if c.HasIfVersion {
		e.uvarint(c.IfVersion)
	}
	switch c.Op {
	case OpAppendMessages:
		e.uvarint(uint64(len(c.Messages)))
		for i := range c.Messages {
			m := &c.Messages[i]
			e.string(m.ID)
			e.string(m.Role)
			e.string(m.Content)
			e.bytes(m.Meta)
		}
	case OpMergeFields:
		keys := make([]string, 0, len(c.Fields))
		for k := range c.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		e.uvarint(uint64(len(keys)))
		for _, k := range keys {
			e.string(k)
			e.bytes(c.Fields[k])
		}
	case OpPatchFields:
		e.bytes(c.Patch)
	case OpPutField:
		e.string(c.Field)
		e.bytes(c.Value)
	case OpDeleteField:
		e.string(c.Field)
	case OpExpire:
		e.varint(c.Before)
	case OpSetExpiry:
		e.varint(c.TTL)
		e.varint(c.Expires)
	case OpSetAlarm:
		e.string(c.Name)
		e.varint(c.Due)
		e.bytes(c.Value)
	case OpDeleteAlarm:
		e.string(c.Name)
	case OpFireAlarm, OpAlarmDelivered:
		e.string(c.Name)
		e.uvarint(c.Set)
	}
	return e.buf
}

// ErrUnknownFormat is returned for command bytes written by a newer or
// unknown encoder.
var ErrUnknownFormat = errors.New("fsm: unknown command format version")

// DecodeCommand parses bytes produced by Encode. It never panics: truncated,
// oversized or unknown input is an error.
func DecodeCommand(b []byte) (*Command, error) {
	d := decoder{buf: b}
	if v := d.byte(); d.err == nil && v != formatVersion {
		return nil, fmt.Errorf("%w: %d", ErrUnknownFormat, v)
	}
	c := &Command{Op: Op(d.byte())}
	flags := d.byte()
	c.Session = d.string()
	c.At = d.varint()
	if flags&flagIfVersion != 0 {
		c.HasIfVersion = true
		c.IfVersion = d.uvarint()
	}
	if d.err != nil {
		return nil, d.err
	}
	if c.Op == 0 || c.Op >= opLimit {
		return nil, fmt.Errorf("fsm: unknown command op %d", c.Op)
	}
	switch c.Op {
	case OpAppendMessages:
		n := d.count(4) // each message takes at least 4 bytes
		if n > 0 {
			c.Messages = make([]NewMessage, n)
		}
		for i := 0; i < n && d.err == nil; i++ {
			m := &c.Messages[i]
			m.ID = d.string()
			m.Role = d.string()
			m.Content = d.string()
			m.Meta = d.bytes()
		}
	case OpMergeFields:
		n := d.count(2)
		c.Fields = make(map[string]json.RawMessage, n)
		for i := 0; i < n && d.err == nil; i++ {
			k := d.string()
			c.Fields[k] = d.bytes()
		}
	case OpPatchFields:
		c.Patch = d.bytes()
	case OpPutField:
		c.Field = d.string()
		c.Value = d.bytes()
	case OpDeleteField:
		c.Field = d.string()
	case OpExpire:
		c.Before = d.varint()
	case OpSetExpiry:
		c.TTL = d.varint()
		c.Expires = d.varint()
	case OpSetAlarm:
		c.Name = d.string()
		c.Due = d.varint()
		c.Value = d.bytes()
	case OpDeleteAlarm:
		c.Name = d.string()
	case OpFireAlarm, OpAlarmDelivered:
		c.Name = d.string()
		c.Set = d.uvarint()
	}
	if d.err == nil && len(d.buf) != 0 {
		d.err = errors.New("fsm: trailing bytes after command")
	}
	if d.err != nil {
		return nil, d.err
	}
	return c, nil
}
