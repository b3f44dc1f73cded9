package main

import (
	"bytes"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/certs"
)

func TestCertsInitWritesALoadableCAAndSecretsOnlyTheOwnerCanRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	nodes := []string{"n1", "n2", "n3"}
	if code := certsCommand([]string{"init", "--dir", dir, "--node", "n1", "--node", "n2,n3",
		"--host", "sessiond.example", "--host", "192.0.2.10"}); code != 0 {
		t.Fatalf("certs init exited %d", code)
	}
	modes := map[string]fs.FileMode{"ca.pem": 0o644, "ca-key.pem": 0o600, "gossip.key": 0o600, "tokens": 0o600}
	for _, n := range nodes {
		modes[n+".pem"], modes[n+"-key.pem"] = 0o644, 0o600
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(modes) {
		t.Errorf("%s holds %d files, want %d", dir, len(entries), len(modes))
	}
	for name, want := range modes {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	for _, n := range nodes {
		s, err := certs.Load(certs.DirFiles(dir, n))
		if err != nil {
			t.Fatalf("load %s's files: %v", n, err)
		}
		if err := s.Certificate().VerifyHostname("sessiond.example"); err != nil {
			t.Errorf("%s's certificate: %v", n, err)
		}
	}

	key := strings.TrimSuffix(readFile(t, dir, "gossip.key"), "\n")
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 32 {
		t.Errorf("gossip.key holds %q: %d bytes, %v; want 32 bytes in base64", key, len(b), err)
	}

	tokens := readFile(t, dir, "tokens")
	if !strings.HasPrefix(tokens, "#") {
		t.Error("the token file does not open with a comment explaining it")
	}
	seen := map[string]string{}
	for _, line := range strings.Split(tokens, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		scope, tok, ok := strings.Cut(line, " ")
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if !ok || err != nil || len(b) != 32 {
			t.Errorf("token line %q: want SCOPE and 32 bytes in unpadded base64url", line)
		}
		for s, other := range seen {
			if other == tok {
				t.Errorf("scopes %s and %s share a token", s, scope)
			}
		}
		seen[scope] = tok
	}
	if len(seen) != 3 || seen["admin"] == "" || seen["data"] == "" || seen["read"] == "" {
		t.Errorf("token scopes %v, want one token each for admin, data and read", seen)
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCertsInitKeepsACompleteDirectoryAndRefusesAPartialOne(t *testing.T) {
	dir := t.TempDir()
	args := []string{"init", "--dir", dir, "--node", "a,b"}
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := runCerts(args, &out, &out)
		return code, out.String()
	}
	if code, out := run(args...); code != 0 {
		t.Fatalf("first run exited %d: %s", code, out)
	}
	ca, tokens := readFile(t, dir, "ca.pem"), readFile(t, dir, "tokens")

	// Every start of a container may run it again.
	code, out := run(args...)
	if code != 0 || !strings.Contains(out, "kept") {
		t.Fatalf("second run exited %d: %s", code, out)
	}
	if readFile(t, dir, "ca.pem") != ca || readFile(t, dir, "tokens") != tokens {
		t.Fatal("the second run changed the files")
	}

	// Some files missing: it must not issue a new CA next to the old one.
	if err := os.Remove(filepath.Join(dir, "b-key.pem")); err != nil {
		t.Fatal(err)
	}
	code, out = run(args...)
	if code == 0 || !strings.Contains(out, "b-key.pem") {
		t.Fatalf("run over a partial directory exited %d: %s", code, out)
	}
	if readFile(t, dir, "ca.pem") != ca {
		t.Fatal("a refused run changed ca.pem")
	}
	// A node added later is a partial directory too.
	if code, _ := run("init", "--dir", dir, "--node", "a,c"); code == 0 {
		t.Fatal("a run that adds a node to an existing directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "c.pem")); err == nil {
		t.Fatal("a refused run wrote c.pem")
	}

	if code, out := run(append(args, "--force")...); code != 0 {
		t.Fatalf("--force exited %d: %s", code, out)
	}
	if readFile(t, dir, "ca.pem") == ca || readFile(t, dir, "tokens") == tokens {
		t.Fatal("--force kept the old CA or tokens")
	}
	if _, err := certs.Load(certs.DirFiles(dir, "b")); err != nil {
		t.Fatal(err)
	}

	for _, bad := range [][]string{nil, {"rotate"}, {"init", "--node", "a"}, {"init", "--dir", dir},
		{"init", "--dir", dir, "--node", "a", "extra"}} {
		if code, _ := run(bad...); code != 2 {
			t.Errorf("certs %q exited %d, want 2", bad, code)
		}
	}
	if code, out := run("init", "--dir", t.TempDir(), "--node", "../x"); code != 1 {
		t.Errorf("a node id that cannot name a file: exit %d: %s", code, out)
	}
}
