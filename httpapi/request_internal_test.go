package httpapi

import (
	"encoding/json"
	"testing"
)

// TestDecodeJSONStringAgreesWithUnmarshal: the fast path for strings
// without escapes returns what json.Unmarshal does, and every other value
// goes to json.Unmarshal.
func TestDecodeJSONStringAgreesWithUnmarshal(t *testing.T) {
	for _, raw := range []string{
		`""`, `"plain"`, `"with \"quotes\""`, `"tab\tand\\backslash"`, `"\u00e9t\u00e9"`,
		`"été, raw UTF-8"`, "\"\xff\xfe invalid UTF-8\"", `"\ud83d\ude00"`, `"\ud83d alone"`,
		`1`, `true`, `{}`, `["a"]`,
	} {
		var want string
		wantErr := json.Unmarshal([]byte(raw), &want)
		got, ok := decodeJSONString(json.RawMessage(raw))
		if ok != (wantErr == nil) || got != want {
			t.Errorf("%s: got %q, %v; json.Unmarshal gives %q, %v", raw, got, ok, want, wantErr)
		}
	}
}
