package certs_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond/certs"
)

func TestKeyPairReloadKeepsThePairInForceOnError(t *testing.T) {
	dir := t.TempDir()
	ca, err := certs.NewCA(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string) (string, string) {
		cert, key, err := certs.NewNodeCert(ca, name, nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c, k := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
		if err := os.WriteFile(c, cert, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(k, key, 0o600); err != nil {
			t.Fatal(err)
		}
		return c, k
	}
	c, k := write("first")
	kp, err := certs.LoadKeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	name := func() string {
		pair, _ := kp.GetCertificate(nil)
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Subject.CommonName
	}
	if name() != "first" {
		t.Fatalf("loaded %q", name())
	}
	write("second")
	if err := kp.Reload(); err != nil || name() != "second" {
		t.Fatalf("reload: %v, serving %q", err, name())
	}
	if err := os.WriteFile(k, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := kp.Reload(); err == nil || name() != "second" {
		t.Fatalf("reload of a broken key: %v, serving %q", err, name())
	}
}
