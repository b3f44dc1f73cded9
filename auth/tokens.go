// Package auth decides who an HTTP request comes from: a client holding a
// bearer token from the node's token file, or another node of the cluster
// proving itself with a certificate the cluster CA signed. What each route
// requires is the HTTP layer's business; this package only answers "which
// scopes does this request hold".
package auth

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
)

// Scope is a set of permissions a credential grants.
type Scope uint8

const (
	// ScopeRead reads the operations API: GET and HEAD of /v1.
	ScopeRead Scope = 1 << iota
	// ScopeData uses the session API under /api/chat/session.
	ScopeData
	// ScopeAdmin is everything: data, read, drain and transfer, and the
	// node-to-node routes under /internal.
	ScopeAdmin
)

// Has reports whether s grants want; admin grants everything.
func (s Scope) Has(want Scope) bool { return s&ScopeAdmin != 0 || s&want == want }

func (s Scope) String() string {
	var names []string
	for _, sc := range []struct {
		bit  Scope
		name string
	}{{ScopeAdmin, "admin"}, {ScopeData, "data"}, {ScopeRead, "read"}} {
		if s&sc.bit != 0 {
			names = append(names, sc.name)
		}
	}
	return strings.Join(names, ",")
}

var scopeNames = map[string]Scope{"read": ScopeRead, "data": ScopeData, "admin": ScopeAdmin}

// MinTokenLen is the shortest token a token file may hold: anything shorter
// could be guessed by an attacker who can send requests all day.
const MinTokenLen = 16

type tokenEntry struct {
	hash  [sha256.Size]byte
	scope Scope
}

// Tokens is an immutable set of bearer tokens and their scopes.
type Tokens struct {
	entries []tokenEntry
	// node is the first admin token: what this node presents to other nodes
	// when no TLS certificate identifies it.
	node string
}

// ParseTokens reads a token file: one "SCOPE TOKEN" pair a line, scope one
// of read, data or admin; blank lines and lines starting with # are
// ignored. A token may appear on several lines to hold several scopes.
func ParseTokens(r io.Reader) (*Tokens, error) {
	t := &Tokens{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"SCOPE TOKEN\"", line)
		}
		scope, ok := scopeNames[f[0]]
		if !ok {
			return nil, fmt.Errorf("line %d: unknown scope %q (want read, data or admin)", line, f[0])
		}
		if len(f[1]) < MinTokenLen {
			return nil, fmt.Errorf("line %d: token shorter than %d characters", line, MinTokenLen)
		}
		t.entries = append(t.entries, tokenEntry{hash: sha256.Sum256([]byte(f[1])), scope: scope})
		if scope == ScopeAdmin && t.node == "" {
			t.node = f[1]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(t.entries) == 0 {
		return nil, fmt.Errorf("no tokens")
	}
	return t, nil
}

// Lookup returns the scopes token holds, and false for an unknown token. It
// compares fixed-size hashes in constant time and visits every entry, so
// its timing tells an attacker nothing about how close a guess was.
func (t *Tokens) Lookup(token string) (Scope, bool) {
	h := sha256.Sum256([]byte(token))
	var scope Scope
	for i := range t.entries {
		if subtle.ConstantTimeCompare(h[:], t.entries[i].hash[:]) == 1 {
			scope |= t.entries[i].scope
		}
	}
	return scope, scope != 0
}

// NodeToken is the token this node presents to other nodes when TLS does
// not identify it: the file's first admin token, "" when it has none.
func (t *Tokens) NodeToken() string { return t.node }

// TokenFile is a token file that can be reloaded while requests are served.
// It is safe for concurrent use; Reload replaces the set atomically.
type TokenFile struct {
	path string
	cur  atomic.Pointer[Tokens]
}

// LoadTokenFile reads path. The file must not be readable by other users:
// anyone who can read it holds every scope in it.
func LoadTokenFile(path string) (*TokenFile, error) {
	f := &TokenFile{path: path}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload reads the file again. On any error the tokens loaded before stay
// in force and the error says what is wrong.
func (f *TokenFile) Reload() error {
	fh, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	defer fh.Close()
	if st, err := fh.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("token file %s: mode %v lets other users read it; chmod 600 it", f.path, st.Mode().Perm())
	}
	t, err := ParseTokens(fh)
	if err != nil {
		return fmt.Errorf("token file %s: %w", f.path, err)
	}
	f.cur.Store(t)
	return nil
}

// Tokens is the set in force.
func (f *TokenFile) Tokens() *Tokens { return f.cur.Load() }
