package httpapi

import (
	"bytes"
	"encoding/json"
	"strconv"

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
	writeJSON(&b, s.ID)
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
		writeJSON(&b, name)
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
		writeJSON(&b, name)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func writeMessages(b *bytes.Buffer, msgs []fsm.Message) {
	if len(msgs) == 0 {
		b.WriteString("[]")
		return
	}
	writeJSON(b, msgs)
}

func writeJSON(b *bytes.Buffer, v any) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)       // values here always encode
	b.Truncate(b.Len() - 1) // Encode appends a newline
}
