package certs_test

import (
	"crypto/tls"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/certs"
)

const validity = 24 * time.Hour

// newDir writes a fresh CA and certificates for nodes into a temporary
// directory.
func newDir(t *testing.T, nodes ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := certs.WriteDir(dir, nodes, []string{"node.example", "10.0.0.7"}, validity, false); err != nil {
		t.Fatal(err)
	}
	return dir
}

func load(t *testing.T, dir, node string) *certs.Store {
	t.Helper()
	s, err := certs.Load(certs.DirFiles(dir, node))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// handshake runs a TLS handshake between client and server configs over an
// in-memory pipe and returns both sides' errors and the server's view.
func handshake(t *testing.T, client, server *tls.Config) (clientErr, serverErr error, state tls.ConnectionState) {
	t.Helper()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	deadline := time.Now().Add(10 * time.Second)
	c.SetDeadline(deadline)
	s.SetDeadline(deadline)
	done := make(chan struct{})
	srv := tls.Server(s, server)
	go func() {
		defer close(done)
		serverErr = srv.Handshake()
		if serverErr == nil {
			// TLS 1.3 clients finish before the server has checked their
			// certificate: have the server answer, so the client sees a
			// rejection.
			_, serverErr = srv.Write([]byte{1})
		}
		if serverErr != nil {
			s.Close()
		}
	}()
	cl := tls.Client(c, client)
	clientErr = cl.Handshake()
	if clientErr == nil {
		_, clientErr = cl.Read(make([]byte, 1))
	}
	if clientErr != nil {
		c.Close()
	}
	<-done
	return clientErr, serverErr, srv.ConnectionState()
}

func TestPeerConfigsAcceptOnlyCertificatesTheClusterCASigned(t *testing.T) {
	dir := newDir(t, "n1", "n2")
	n1, n2 := load(t, dir, "n1"), load(t, dir, "n2")
	stranger := load(t, newDir(t, "n1"), "n1") // same name, another CA

	cErr, sErr, st := handshake(t, n2.PeerClient(), n1.PeerServer())
	if cErr != nil || sErr != nil {
		t.Fatalf("members: client %v, server %v", cErr, sErr)
	}
	if st.Version != tls.VersionTLS13 || st.PeerCertificates[0].Subject.CommonName != "n2" {
		t.Fatalf("members: version %x, peer %q", st.Version, st.PeerCertificates[0].Subject.CommonName)
	}
	if !n1.PeerVerified(st) {
		t.Fatal("a member's connection is not PeerVerified")
	}

	// A client whose certificate another CA signed; it does not even
	// check the server, as an attacker would not.
	attacker := stranger.PeerClient()
	attacker.VerifyConnection = nil
	if _, sErr, _ := handshake(t, attacker, n1.PeerServer()); sErr == nil {
		t.Fatal("the server accepted a client certificate from another CA")
	}
	// A client with no certificate.
	bare := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	if _, sErr, _ := handshake(t, bare, n1.PeerServer()); sErr == nil {
		t.Fatal("the server accepted a client without a certificate")
	}
	// A member dialing a server that another CA vouches for.
	if cErr, _, _ := handshake(t, n2.PeerClient(), stranger.PeerServer()); cErr == nil {
		t.Fatal("the client accepted a server certificate from another CA")
	}
	// TLS 1.2 is refused between peers.
	old := n2.PeerClient()
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if _, sErr, _ := handshake(t, old, n1.PeerServer()); sErr == nil {
		t.Fatal("the peer server accepted TLS 1.2")
	}
}

func TestServerVerifiesAClientCertificateOnlyWhenOneIsGiven(t *testing.T) {
	dir := newDir(t, "n1", "n2")
	n1, n2 := load(t, dir, "n1"), load(t, dir, "n2")
	stranger := load(t, newDir(t, "x"), "x")
	srv := n1.Server(tls.VerifyClientCertIfGiven)
	roots := &tls.Config{InsecureSkipVerify: true}

	cErr, sErr, st := handshake(t, roots, srv)
	if cErr != nil || sErr != nil {
		t.Fatalf("client without a certificate: client %v, server %v", cErr, sErr)
	}
	if n1.PeerVerified(st) {
		t.Fatal("a client without a certificate is PeerVerified")
	}
	cErr, sErr, st = handshake(t, n2.PeerClient(), srv)
	if cErr != nil || sErr != nil {
		t.Fatalf("member: client %v, server %v", cErr, sErr)
	}
	if !n1.PeerVerified(st) {
		t.Fatal("a member is not PeerVerified")
	}
	attacker := stranger.PeerClient()
	attacker.VerifyConnection = nil
	if _, sErr, _ := handshake(t, attacker, srv); sErr == nil {
		t.Fatal("the server accepted a client certificate from another CA")
	}
	if _, sErr, _ := handshake(t, roots, n1.Server(tls.RequireAndVerifyClientCert)); sErr == nil {
		t.Fatal("a server requiring client certificates accepted a client without one")
	}
}

// copyDir replaces the files of dst with those of src.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReloadTakesEffectForNewHandshakesWithoutRebuildingConfigs(t *testing.T) {
	dir := newDir(t, "n1", "n2")
	n1, n2 := load(t, dir, "n1"), load(t, dir, "n2")
	server, client := n1.PeerServer(), n2.PeerClient()
	oldSerial := n1.Certificate().SerialNumber
	_, _, before := handshake(t, client, server)

	// The cluster moves to a new CA: n1's files are replaced and reloaded.
	fresh := newDir(t, "n1", "n2")
	copyDir(t, fresh, dir)
	if err := n1.Reload(); err != nil {
		t.Fatal(err)
	}
	if n1.Certificate().SerialNumber.Cmp(oldSerial) == 0 {
		t.Fatal("Certificate still reports the old certificate")
	}
	// n2 still holds the old CA and certificate: the new n1 refuses it as a
	// client, and n2 refuses the new n1 as a server.
	if _, sErr, _ := handshake(t, client, server); sErr == nil {
		t.Fatal("after the reload the server accepted a certificate from the old CA")
	}
	if n1.PeerVerified(before) {
		t.Fatal("a connection verified under the old CA is still PeerVerified")
	}
	if cErr, _, _ := handshake(t, n1.PeerClient(), n2.PeerServer()); cErr == nil {
		t.Fatal("a node that still trusts only the old CA accepted the new certificate")
	}
	// Once n2 reloads too, the same configs work again.
	if err := n2.Reload(); err != nil {
		t.Fatal(err)
	}
	cErr, sErr, st := handshake(t, client, server)
	if cErr != nil || sErr != nil {
		t.Fatalf("after both reloads: client %v, server %v", cErr, sErr)
	}
	if !n1.PeerVerified(st) || st.PeerCertificates[0].SerialNumber.Cmp(n2.Certificate().SerialNumber) != 0 {
		t.Fatal("the client did not present its reloaded certificate")
	}
}

func TestReloadKeepsServingTheOldFilesWhenTheNewOnesAreBroken(t *testing.T) {
	dir := newDir(t, "n1", "n2")
	n1, n2 := load(t, dir, "n1"), load(t, dir, "n2")
	server, client := n1.PeerServer(), n2.PeerClient()
	serial := n1.Certificate().SerialNumber
	files := certs.DirFiles(dir, "n1")
	other := newDir(t, "n1")

	for _, c := range []struct {
		name, file string
		data       func() []byte
		want       string
	}{
		{"garbage key", files.Key, func() []byte { return []byte("not a key") }, files.Key},
		{"key of another certificate", files.Key, func() []byte { return read(t, certs.DirFiles(dir, "n2").Key) }, files.Key},
		{"another CA", files.CA, func() []byte { return read(t, certs.DirFiles(other, "n1").CA) }, "does not verify"},
		{"empty CA", files.CA, func() []byte { return nil }, files.CA},
	} {
		orig := read(t, c.file)
		if err := os.WriteFile(c.file, c.data(), 0o600); err != nil {
			t.Fatal(err)
		}
		err := n1.Reload()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: Reload = %v, want an error mentioning %q", c.name, err, c.want)
		}
		if n1.Certificate().SerialNumber.Cmp(serial) != 0 {
			t.Fatalf("%s: the failed reload replaced the certificate", c.name)
		}
		if cErr, sErr, _ := handshake(t, client, server); cErr != nil || sErr != nil {
			t.Fatalf("%s: after a failed reload: client %v, server %v", c.name, cErr, sErr)
		}
		if err := os.WriteFile(c.file, orig, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(files.CA)
	if err := n1.Reload(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Reload with the CA file gone = %v, want fs.ErrNotExist", err)
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadNamesTheFileAtFault(t *testing.T) {
	dir := newDir(t, "n1", "n2")
	other := newDir(t, "n1")
	good := certs.DirFiles(dir, "n1")
	notPEM := filepath.Join(t.TempDir(), "plain.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		f    certs.Files
		want string
	}{
		{"missing CA", certs.Files{CA: filepath.Join(dir, "nope.pem"), Cert: good.Cert, Key: good.Key}, "nope.pem"},
		{"CA not PEM", certs.Files{CA: notPEM, Cert: good.Cert, Key: good.Key}, notPEM},
		{"certificate not PEM", certs.Files{CA: good.CA, Cert: notPEM, Key: good.Key}, notPEM},
		{"key not PEM", certs.Files{CA: good.CA, Cert: good.Cert, Key: notPEM}, notPEM},
		{"a certificate as the key", certs.Files{CA: good.CA, Cert: good.Cert, Key: good.Cert}, good.Cert},
		{"key of another node", certs.Files{CA: good.CA, Cert: good.Cert, Key: certs.DirFiles(dir, "n2").Key}, "n2-key.pem"},
		{"certificate of another CA", certs.Files{CA: good.CA, Cert: certs.DirFiles(other, "n1").Cert,
			Key: certs.DirFiles(other, "n1").Key}, "does not verify against the CA"},
	} {
		_, err := certs.Load(c.f)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Load = %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
}

func TestWriteDirRefusesToOverwriteUnlessAsked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	nodes := []string{"n1", "n2", "n3"}
	if err := certs.WriteDir(dir, nodes, []string{"sessiond.internal", "192.0.2.1"}, validity, false); err != nil {
		t.Fatal(err)
	}
	modes := map[string]fs.FileMode{"ca.pem": 0o644, "ca-key.pem": 0o600}
	for _, n := range nodes {
		modes[n+".pem"], modes[n+"-key.pem"] = 0o644, 0o600
	}
	checkModes := func() {
		t.Helper()
		for name, want := range modes {
			st, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != want {
				t.Errorf("%s has mode %v, want %v", name, st.Mode().Perm(), want)
			}
		}
		if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("directory: %v, %v; want mode 0700", st.Mode().Perm(), err)
		}
	}
	checkModes()
	s := load(t, dir, "n2")
	leaf := s.Certificate()
	if leaf.Subject.CommonName != "n2" || !slices.Equal(leaf.DNSNames, []string{"n2", "localhost", "sessiond.internal"}) ||
		len(leaf.IPAddresses) != 3 || leaf.NotAfter.Sub(leaf.NotBefore) < validity {
		t.Fatalf("n2's certificate: CN %q, DNS %v, IPs %v, valid %v to %v",
			leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses, leaf.NotBefore, leaf.NotAfter)
	}
	for _, name := range []string{"n2", "localhost", "sessiond.internal", "127.0.0.1", "::1", "192.0.2.1"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("n2's certificate: %v", err)
		}
	}

	before := read(t, filepath.Join(dir, "ca.pem"))
	err := certs.WriteDir(dir, nodes, nil, validity, false)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second WriteDir = %v, want fs.ErrExist", err)
	}
	if string(read(t, filepath.Join(dir, "ca.pem"))) != string(before) {
		t.Fatal("a refused WriteDir changed ca.pem")
	}
	// Adding a node to a directory that has some of the files writes none.
	err = certs.WriteDir(dir, []string{"n3", "n4"}, nil, validity, false)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("WriteDir over some existing files = %v, want fs.ErrExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "n4.pem")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a refused WriteDir wrote n4.pem")
	}

	// Overwriting fixes loose modes too.
	if err := os.Chmod(filepath.Join(dir, "n1-key.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteDir(dir, nodes, nil, validity, true); err != nil {
		t.Fatal(err)
	}
	checkModes()
	if string(read(t, filepath.Join(dir, "ca.pem"))) == string(before) {
		t.Fatal("WriteDir with overwrite kept the old CA")
	}
	load(t, dir, "n1")
}

func TestGenerateRefusesNodeIDsThatCannotNameFiles(t *testing.T) {
	for _, nodes := range [][]string{nil, {""}, {"../etc"}, {"a/b"}, {".hidden"}, {"ca"}, {"n1", "n1-key"}, {"n1", "n1"},
		{strings.Repeat("x", 65)}} {
		if _, err := certs.Generate(nodes, nil, validity); err == nil {
			t.Errorf("Generate(%q) succeeded", nodes)
		}
	}
}

func TestReloadWhileHandshakingIsSafe(t *testing.T) {
	dir := newDir(t, "n1", "n2")
	n1, n2 := load(t, dir, "n1"), load(t, dir, "n2")
	server, client := n1.PeerServer(), n2.PeerClient()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			if err := n1.Reload(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 20; i++ {
		cErr, sErr, st := handshake(t, client, server)
		if cErr != nil || sErr != nil || !n1.PeerVerified(st) {
			t.Fatalf("handshake %d during reloads: client %v, server %v", i, cErr, sErr)
		}
	}
	<-done
}
