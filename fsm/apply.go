package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// appendMessages stores the command's messages that are not stored yet.
// Messages whose id is already stored with identical role, content and meta
// are answered with the stored copy; a differing one fails the whole batch.
func (f *FSM) appendMessages(index uint64, cur *Session, cmd *Command) *Result {
	if len(cmd.Messages) == 0 {
		return &Result{Status: StatusInvalid, Detail: "append needs at least one message"}
	}
	for i, m := range cmd.Messages {
		if err := f.limits.ValidMessage(m); err != nil {
			return &Result{Status: StatusInvalid, Detail: err.Error()}
		}
		if len(m.Meta) > 0 {
			// Compact so a retry that formats meta differently still
			// matches the stored message.
			meta, err := compactJSON(m.Meta)
			if err != nil {
				return &Result{Status: StatusInvalid, Detail: "message meta is not valid JSON"}
			}
			cmd.Messages[i].Meta = meta
		}
	}
	ids := f.msgIndex[cmd.Session]
	var stored messageLog
	if cur != nil {
		stored = cur.messages
	}
	out := make([]Message, len(cmd.Messages))
	var fresh []int // positions in cmd.Messages to append
	batch := batchIDs{msgs: cmd.Messages}
	for i, m := range cmd.Messages {
		if seq, ok := ids.lookup(stored, m.ID); ok {
			old := stored.at(int(seq - 1))
			if !sameMessage(old, m) {
				return &Result{Status: StatusIDConflict, Version: versionOf(cur), Session: cur,
					Detail: fmt.Sprintf("message id %q is already stored with different content", m.ID)}
			}
			out[i] = old
			continue
		}
		if seq, ok := batch.first(fresh, m.ID); ok { // the same id twice in one batch
			if !sameMessage(out[seq], m) {
				return &Result{Status: StatusIDConflict, Version: versionOf(cur), Session: cur,
					Detail: fmt.Sprintf("message id %q appears twice with different content", m.ID)}
			}
			out[i] = out[seq]
			continue
		}
		batch.add(m.ID, i)
		fresh = append(fresh, i)
		out[i] = Message{ID: m.ID, Role: m.Role, Content: m.Content, Meta: m.Meta, CreatedAt: cmd.At}
	}
	if len(fresh) == 0 {
		return &Result{Status: StatusOK, Version: versionOf(cur), Messages: out, Session: cur}
	}
	if id, ok := f.buried(cmd.Session, cmd.Messages, cmd.At); ok {
		return &Result{Status: StatusIDConflict, Version: versionOf(cur), Session: cur,
			Detail: fmt.Sprintf("message id %q belonged to this session before it was deleted; a late retry of that append is refused, new messages need new ids", id)}
	}
	if r := checkVersion(cur, cmd); r != nil {
		return r
	}
	if stored.len()+len(fresh) > f.limits.MaxMessages {
		return &Result{Status: StatusTooLarge, Version: versionOf(cur), Session: cur,
			Detail: fmt.Sprintf("session would exceed %d messages", f.limits.MaxMessages)}
	}
	s, created := next(index, cur, cmd)
	if ids == nil {
		ids = newIDIndex(len(fresh))
		f.msgIndex[cmd.Session] = ids
	}
	// Appending to the newest version only writes past every older version's
	// length; see Session.messages.
	msgs := stored
	for _, i := range fresh {
		m := out[i]
		m.Seq = uint64(msgs.len() + 1)
		m.Version = index
		msgs = msgs.appended(&m)
		s.msgBytes += messageSize(&m)
		ids.add(msgs, m.ID, m.Seq)
		out[i] = m
	}
	for i, m := range cmd.Messages { // duplicates within the batch get the seq too
		if out[i].Seq == 0 {
			first, _ := batch.first(fresh, m.ID)
			out[i] = out[first]
		}
	}
	s.messages = msgs
	if created {
		s.fields = map[string]json.RawMessage{}
	}
	f.put(cmd.Session, s)
	return &Result{Status: StatusOK, Version: index, Created: created, Changed: true, Messages: out, Session: s}
}

// batchIDs finds the first new message of a batch with a given id. Most
// batches hold one message, or a few: those are searched in place, and
// only a long batch gets a map.
type batchIDs struct {
	msgs  []NewMessage
	index map[string]int // id → position, for batches over batchScanMax
}

const batchScanMax = 8

func (b *batchIDs) add(id string, i int) {
	if len(b.msgs) <= batchScanMax {
		return
	}
	if b.index == nil {
		b.index = make(map[string]int, len(b.msgs))
	}
	b.index[id] = i
}

// first returns the position of the first message among fresh (positions
// in the batch, in order) whose id is id.
func (b *batchIDs) first(fresh []int, id string) (int, bool) {
	if len(b.msgs) > batchScanMax {
		i, ok := b.index[id]
		return i, ok
	}
	for _, i := range fresh {
		if b.msgs[i].ID == id {
			return i, true
		}
	}
	return 0, false
}

func sameMessage(old Message, m NewMessage) bool {
	return old.Role == m.Role && old.Content == m.Content && bytes.Equal(old.Meta, m.Meta)
}

// writeFields applies the field commands. The new fields map is built on the
// side and published only if it passes the limits.
func (f *FSM) writeFields(index uint64, cur *Session, cmd *Command) *Result {
	if cur == nil && cmd.Op == OpDeleteField {
		return &Result{Status: StatusNotFound, Detail: "session not found"}
	}
	var old map[string]json.RawMessage
	if cur != nil {
		old = cur.fields
	}
	fields := make(map[string]json.RawMessage, len(old)+len(cmd.Fields)+1)
	for k, v := range old {
		fields[k] = v
	}
	switch cmd.Op {
	case OpMergeFields:
		for k, v := range cmd.Fields {
			if err := f.limits.ValidFieldName(k); err != nil {
				return &Result{Status: StatusInvalid, Detail: err.Error()}
			}
			if isNull(v) {
				delete(fields, k)
				continue
			}
			cv, err := compactJSON(v)
			if err != nil {
				return &Result{Status: StatusInvalid, Detail: fmt.Sprintf("field %q: %v", k, err)}
			}
			fields[k] = cv
		}
	case OpPatchFields:
		if err := mergePatchFields(fields, cmd.Patch, f.limits); err != nil {
			return &Result{Status: StatusInvalid, Detail: err.Error()}
		}
	case OpPutField:
		if err := f.limits.ValidFieldName(cmd.Field); err != nil {
			return &Result{Status: StatusInvalid, Detail: err.Error()}
		}
		cv, err := compactJSON(cmd.Value)
		if err != nil {
			return &Result{Status: StatusInvalid, Detail: fmt.Sprintf("field %q: %v", cmd.Field, err)}
		}
		fields[cmd.Field] = cv
	case OpDeleteField:
		if _, ok := fields[cmd.Field]; !ok {
			return &Result{Status: StatusNotFound, Version: versionOf(cur), Session: cur, Detail: "field not found"}
		}
		delete(fields, cmd.Field)
	}
	if cur == nil && len(fields) == 0 && (len(cmd.Fields) > 0 || len(cmd.Patch) > 2) {
		// Only deletions on a session that does not exist: deleting must
		// not create it. (An empty merge, PUT {}, does create it.)
		return &Result{Status: StatusNotFound, Detail: "session not found"}
	}
	size := fieldsSize(fields)
	if size > f.limits.MaxFieldBytes {
		return &Result{Status: StatusTooLarge, Version: versionOf(cur), Session: cur,
			Detail: fmt.Sprintf("fields would take %d bytes, over the limit of %d", size, f.limits.MaxFieldBytes)}
	}
	s, created := next(index, cur, cmd)
	s.fields = fields
	s.fieldBytes = size
	s.fieldsVersion = index
	f.put(cmd.Session, s)
	return &Result{Status: StatusOK, Version: index, Created: created, Changed: true, Session: s}
}

func fieldsSize(fields map[string]json.RawMessage) int {
	n := 0
	for k, v := range fields {
		n += len(k) + len(v)
	}
	return n
}

func isNull(v json.RawMessage) bool {
	return len(v) == 0 || string(bytes.TrimSpace(v)) == "null"
}

// compactJSON validates v and returns it without insignificant whitespace,
// so equal values are stored as equal bytes on every replica.
func compactJSON(v json.RawMessage) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return nil, fmt.Errorf("not valid JSON")
	}
	return buf.Bytes(), nil
}
