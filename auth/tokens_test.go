package auth

import (
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTokensGrantsTheScopesOfEveryLineOfAToken(t *testing.T) {
	toks, err := ParseTokens(strings.NewReader(`
# comment
read  shared-token-0123456789
data  shared-token-0123456789
admin admin-token-0123456789
`))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := toks.Lookup("shared-token-0123456789"); !ok || s != ScopeRead|ScopeData {
		t.Fatalf("shared token scope = %v %v, want read,data", s, ok)
	}
	if s, ok := toks.Lookup("admin-token-0123456789"); !ok || !s.Has(ScopeData) || !s.Has(ScopeRead) {
		t.Fatalf("admin token scope = %v %v, want everything", s, ok)
	}
	for _, bad := range []string{"", "shared-token-012345678", "shared-token-01234567890", "SHARED-TOKEN-0123456789"} {
		if s, ok := toks.Lookup(bad); ok {
			t.Fatalf("Lookup(%q) = %v, want unknown", bad, s)
		}
	}
	if got := toks.NodeToken(); got != "admin-token-0123456789" {
		t.Fatalf("NodeToken = %q", got)
	}
}

func TestParseTokensRefusesMalformedFiles(t *testing.T) {
	for name, body := range map[string]string{
		"empty":         "# nothing\n",
		"unknown scope": "write token-0123456789abcdef\n",
		"short token":   "admin short\n",
		"missing token": "admin\n",
		"extra field":   "admin token-0123456789abcdef more\n",
	} {
		if _, err := ParseTokens(strings.NewReader(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestScopeHas(t *testing.T) {
	if ScopeRead.Has(ScopeData) || ScopeData.Has(ScopeRead) || ScopeData.Has(ScopeAdmin) {
		t.Fatal("a narrow scope grants another")
	}
	if !ScopeAdmin.Has(ScopeRead) || !ScopeAdmin.Has(ScopeData) || !ScopeAdmin.Has(ScopeAdmin) {
		t.Fatal("admin does not grant everything")
	}
}

func TestTokenFileReloadKeepsTheOldTokensWhenTheNewFileIsBad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	write := func(body string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("data old-token-0123456789\n", 0o600)
	f, err := LoadTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write("data new-token-0123456789\n", 0o600)
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Tokens().Lookup("new-token-0123456789"); !ok {
		t.Fatal("reload did not take the new token")
	}
	if _, ok := f.Tokens().Lookup("old-token-0123456789"); ok {
		t.Fatal("reload kept a removed token")
	}
	write("nonsense\n", 0o600)
	if err := f.Reload(); err == nil {
		t.Fatal("reload accepted a malformed file")
	}
	write("data other-token-0123456789\n", 0o644)
	if err := f.Reload(); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("reload of a world-readable file = %v, want a refusal", err)
	}
	if _, ok := f.Tokens().Lookup("new-token-0123456789"); !ok {
		t.Fatal("a failed reload dropped the tokens in force")
	}
}

func TestAuthenticatorTrustsPeersAndBearerTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("read read-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := LoadTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	peer := false
	a := &Authenticator{Tokens: f, IsPeer: func(tls.ConnectionState) bool { return peer }}
	req := func(auth string, withTLS bool) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://x/v1/cluster", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		if withTLS {
			r.TLS = &tls.ConnectionState{}
		}
		return r
	}
	cases := []struct {
		auth    string
		tls     bool
		peer    bool
		want    Scope
		wantOK  bool
		comment string
	}{
		{"", false, false, 0, false, "no credential"},
		{"Bearer read-token-0123456789", false, false, ScopeRead, true, "token"},
		{"bearer read-token-0123456789", false, false, ScopeRead, true, "scheme is case-insensitive"},
		{"Basic read-token-0123456789", false, false, 0, false, "not a bearer token"},
		{"Bearer wrong-token-0123456789", false, false, 0, false, "unknown token"},
		{"", true, true, ScopeAdmin, true, "a verified peer certificate"},
		{"", true, false, 0, false, "TLS without a peer certificate"},
		{"", false, true, 0, false, "no TLS at all"},
	}
	for _, c := range cases {
		peer = c.peer
		got, ok := a.Authenticate(req(c.auth, c.tls))
		if got != c.want || ok != c.wantOK {
			t.Errorf("%s: Authenticate = %v %v, want %v %v", c.comment, got, ok, c.want, c.wantOK)
		}
	}
}
