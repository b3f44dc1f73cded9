package httpapi

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/sessiond/sessiond/fsm"
)

// sessionDocument renders a session as the seed's ChatSessionState: the
// fixed members followed by every field at the top level, sorted by name.
//
// expiresAt, when positive, is rendered as the session's expiresAt (unix
// ms): when the session will be removed unless written again.
func sessionDocument(s *fsm.Session, expiresAt int64) []byte {
	var b bytes.Buffer
	b.Grow(256 + s.FieldBytes() + 128*s.MessageCount())
	b.WriteString(`{"id":`)
	writeString(&b, s.ID)
	b.WriteString(`,"createdAt":`)
	b.WriteString(strconv.FormatInt(s.CreatedAt, 10))
	b.WriteString(`,"updatedAt":`)
	b.WriteString(strconv.FormatInt(s.UpdatedAt, 10))
	b.WriteString(`,"lastAccessedAt":`)
	b.WriteString(strconv.FormatInt(s.UpdatedAt, 10))
	b.WriteString(`,"version":`)
	b.WriteString(strconv.FormatUint(s.Version, 10))
	if expiresAt > 0 {
		b.WriteString(`,"expiresAt":`)
		b.WriteString(strconv.FormatInt(expiresAt, 10))
	}
	b.WriteString(`,"messages":`)
	writeMessages(&b, s.Messages())
	for _, name := range s.FieldNames() {
		v, _ := s.Field(name)
		b.WriteByte(',')
		writeString(&b, name)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// fieldsDocument renders just the fields as one JSON object.
func fieldsDocument(s *fsm.Session) []byte {
	var b bytes.Buffer
	b.Grow(16 + s.FieldBytes() + 4*len(s.Fields()))
	b.WriteByte('{')
	for i, name := range s.FieldNames() {
		if i > 0 {
			b.WriteByte(',')
		}
		v, _ := s.Field(name)
		writeString(&b, name)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// messagesDocument renders the answer to an append or a page of messages:
// {"messages":[...],"version":N} and, for a page, the members that follow.
func messagesDocument(msgs []fsm.Message, version uint64, page *pageInfo) []byte {
	b := make([]byte, 0, 64+len(msgs)*160+messagesBytes(msgs))
	b = append(b, `{"messages":`...)
	b = appendMessages(b, msgs)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, version, 10)
	if page != nil {
		b = append(b, `,"total":`...)
		b = strconv.AppendInt(b, int64(page.Total), 10)
		if page.NextAfter > 0 {
			b = append(b, `,"nextAfter":`...)
			b = strconv.AppendUint(b, page.NextAfter, 10)
		}
		b = append(b, `,"hasMore":`...)
		b = strconv.AppendBool(b, page.HasMore)
	}
	return append(b, "}\n"...)
}

func messagesBytes(msgs []fsm.Message) int {
	n := 0
	for i := range msgs {
		n += len(msgs[i].ID) + len(msgs[i].Role) + len(msgs[i].Content) + len(msgs[i].Meta)
	}
	return n
}

func writeMessages(b *bytes.Buffer, msgs []fsm.Message) {
	b.Grow(2 + len(msgs)*160 + messagesBytes(msgs))
	b.Write(appendMessages(b.AvailableBuffer(), msgs))
}

// appendMessages appends msgs as a JSON array, each message as
// encoding/json renders an fsm.Message.
func appendMessages(b []byte, msgs []fsm.Message) []byte {
	b = append(b, '[')
	for i := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		m := &msgs[i]
		b = append(b, `{"seq":`...)
		b = strconv.AppendUint(b, m.Seq, 10)
		b = append(b, `,"id":`...)
		b = appendString(b, m.ID)
		b = append(b, `,"role":`...)
		b = appendString(b, m.Role)
		b = append(b, `,"content":`...)
		b = appendString(b, m.Content)
		b = append(b, `,"createdAt":`...)
		b = strconv.AppendInt(b, m.CreatedAt, 10)
		if len(m.Meta) > 0 {
			// Stored meta is compact JSON (the state machine compacts it).
			b = append(b, `,"meta":`...)
			b = append(b, m.Meta...)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

func writeString(b *bytes.Buffer, s string) {
	b.Grow(len(s) + 2)
	b.Write(appendString(b.AvailableBuffer(), s))
}

// appendString appends s as a JSON string, escaped as encoding/json does
// without HTML escaping: quote, backslash and control characters escaped,
// invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
