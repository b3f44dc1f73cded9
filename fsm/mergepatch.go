package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// maxPatchDepth bounds the recursion of a merge patch. Deeper documents are
// rejected rather than risk the apply goroutine's stack.
const maxPatchDepth = 64

// mergePatchFields applies an RFC 7396 merge patch to fields in place. The
// patch must be a JSON object: its members are fields.
func mergePatchFields(fields map[string]json.RawMessage, patch json.RawMessage, limits Limits) error {
	members, err := decodeObject(patch)
	if err != nil {
		return errors.New("merge patch must be a JSON object")
	}
	for k, v := range members {
		if err := limits.ValidFieldName(k); err != nil {
			return err
		}
		if isNull(v) {
			delete(fields, k)
			continue
		}
		merged, err := mergePatch(fields[k], v, 1)
		if err != nil {
			return fmt.Errorf("field %q: %w", k, err)
		}
		fields[k] = merged
	}
	return nil
}

// mergePatch is RFC 7396 MergePatch(target, patch) on raw JSON: a non-object
// patch replaces the target; an object patch is merged member by member into
// the target (or into {} if the target is not an object), null removing.
func mergePatch(target, patch json.RawMessage, depth int) (json.RawMessage, error) {
	if depth > maxPatchDepth {
		return nil, fmt.Errorf("merge patch nested deeper than %d", maxPatchDepth)
	}
	if !isObject(patch) {
		return compactJSON(patch)
	}
	p, err := decodeObject(patch)
	if err != nil {
		return nil, errors.New("not valid JSON")
	}
	t, err := decodeObject(target)
	if err != nil || t == nil {
		t = map[string]json.RawMessage{}
	}
	for k, v := range p {
		if isNull(v) {
			delete(t, k)
			continue
		}
		m, err := mergePatch(t[k], v, depth+1)
		if err != nil {
			return nil, err
		}
		t[k] = m
	}
	// Map keys are written sorted, so every replica produces the same
	// bytes; HTML escaping is off to store values as Compact would.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(t); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func isObject(v json.RawMessage) bool {
	v = bytes.TrimLeft(v, " \t\r\n")
	return len(v) > 0 && v[0] == '{'
}

func decodeObject(v json.RawMessage) (map[string]json.RawMessage, error) {
	if !isObject(v) {
		return nil, errors.New("not a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, err
	}
	return m, nil
}
