package fsm

import "fmt"

// Limits bound what one session may hold. They are enforced by the HTTP layer
// before a command is proposed and again by Apply, so a command that slipped
// past an older or misconfigured proposer still cannot grow a session beyond
// them. Every replica of a shard must run with the same Limits.
type Limits struct {
	MaxSessionIDBytes int // session id length
	MaxMessageIDBytes int // message id length
	MaxRoleBytes      int // message role length
	MaxContentBytes   int // one message's content
	MaxMetaBytes      int // one message's meta JSON
	MaxFieldBytes     int // all fields of a session, keys plus values
	MaxFieldNameBytes int // one field name
	MaxMessages       int // messages per session
	MaxAlarms         int // pending alarms per session; 0 means DefaultMaxAlarms
	MaxPayloadBytes   int // one alarm's payload JSON; 0 means DefaultMaxPayloadBytes
}

// Defaults of the alarm limits, which older configurations leave at 0.
const (
	DefaultMaxAlarms       = 32
	DefaultMaxPayloadBytes = 16 << 10
)

func (l Limits) maxAlarms() int {
	if l.MaxAlarms > 0 {
		return l.MaxAlarms
	}
	return DefaultMaxAlarms
}

func (l Limits) maxPayloadBytes() int {
	if l.MaxPayloadBytes > 0 {
		return l.MaxPayloadBytes
	}
	return DefaultMaxPayloadBytes
}

// DefaultLimits are the limits a node enforces unless told otherwise; the
// README lists them with the errors that exceeding them returns.
var DefaultLimits = Limits{
	MaxSessionIDBytes: 256,
	MaxMessageIDBytes: 256,
	MaxRoleBytes:      64,
	MaxContentBytes:   64 << 10,
	MaxMetaBytes:      16 << 10,
	MaxFieldBytes:     1 << 20,
	MaxFieldNameBytes: 256,
	MaxMessages:       100_000,
}

// ValidSessionID reports whether id is 1..max bytes of [A-Za-z0-9._:@-].
func (l Limits) ValidSessionID(id string) error {
	if len(id) == 0 || len(id) > l.MaxSessionIDBytes {
		return fmt.Errorf("session id must be 1 to %d bytes", l.MaxSessionIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if !sessionIDByte[id[i]] {
			return fmt.Errorf("session id may contain only A-Z a-z 0-9 . _ : @ -")
		}
	}
	return nil
}

var sessionIDByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "._:@-" {
		t[c] = true
	}
	return t
}()

// ValidFieldName reports whether name may be used as a field.
func (l Limits) ValidFieldName(name string) error {
	if name == "" || len(name) > l.MaxFieldNameBytes {
		return fmt.Errorf("field name must be 1 to %d bytes", l.MaxFieldNameBytes)
	}
	if IsReservedField(name) {
		return fmt.Errorf("%q is a reserved name, not a field", name)
	}
	return nil
}

// ValidAlarmName reports whether name is 1 to 64 bytes of [A-Za-z0-9._-]:
// alarm names travel in URL paths and webhook idempotency keys.
func ValidAlarmName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("alarm name must be 1 to 64 bytes")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !sessionIDByte[c] || c == ':' || c == '@' {
			return fmt.Errorf("alarm name may contain only A-Z a-z 0-9 . _ -")
		}
	}
	return nil
}

// ValidMessage checks one message to be appended.
func (l Limits) ValidMessage(m NewMessage) error {
	switch {
	case m.ID == "" || len(m.ID) > l.MaxMessageIDBytes:
		return fmt.Errorf("message id must be 1 to %d bytes", l.MaxMessageIDBytes)
	case m.Role == "" || len(m.Role) > l.MaxRoleBytes:
		return fmt.Errorf("message role must be 1 to %d bytes", l.MaxRoleBytes)
	case len(m.Content) > l.MaxContentBytes:
		return fmt.Errorf("message content is over the limit of %d bytes", l.MaxContentBytes)
	case len(m.Meta) > l.MaxMetaBytes:
		return fmt.Errorf("message meta is over the limit of %d bytes", l.MaxMetaBytes)
	}
	return nil
}
