// Package certs is a node's TLS identity: the cluster CA and the node's key
// pair, loaded from PEM files and reloadable without a restart, the
// tls.Configs built from them, and the generation of a throwaway CA and
// node certificates for development and compose setups.
//
// The CA is dedicated to one cluster: any certificate it signed identifies a
// member. Peers therefore verify each other's certificate chain against the
// CA and never check host names.
package certs

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Files names a node's PEM files.
type Files struct {
	// CA holds one or more CA certificates. Several let a cluster move to a
	// new CA: list the old and the new one until every node has a
	// certificate from the new CA.
	CA string
	// Cert holds the node's certificate, optionally followed by the
	// intermediates that link it to the CA.
	Cert string
	// Key holds the private key of Cert.
	Key string
}

// Store holds the CA pool and key pair loaded from Files. It is safe for
// concurrent use. The tls.Configs it builds read the store at every
// handshake, so a Reload takes effect for new connections without
// rebuilding them; connections already established are left alone.
type Store struct {
	files Files

	reload sync.Mutex // serialises Reload, so an older read never wins
	cur    atomic.Pointer[material]
}

// material is one consistent load of the files. It is never modified once
// stored, except for its cache of verified peers.
type material struct {
	pool    *x509.CertPool
	pair    *tls.Certificate // Leaf is set
	chainOf *x509.CertPool   // pair's intermediates

	mu       sync.RWMutex
	verified map[[sha256.Size]byte]struct{} // client certificates that verified against pool
}

// Load reads f and checks that the key matches the certificate and that the
// certificate verifies against the CA for both server and client
// authentication, as a node uses it for both. The error names the file at
// fault.
func Load(f Files) (*Store, error) {
	m, err := load(f)
	if err != nil {
		return nil, err
	}
	s := &Store{files: f}
	s.cur.Store(m)
	return s, nil
}

// Reload reads the files again. On any error the material loaded before
// stays in force and the error says what is wrong. It blocks only on
// reading the files.
func (s *Store) Reload() error {
	s.reload.Lock()
	defer s.reload.Unlock()
	m, err := load(s.files)
	if err != nil {
		return err
	}
	s.cur.Store(m)
	return nil
}

// Certificate is the node's certificate in force, for reporting (subject,
// expiry). The caller must not modify it.
func (s *Store) Certificate() *x509.Certificate { return s.cur.Load().pair.Leaf }

func load(f Files) (*material, error) {
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("CA file %s: %w", f.CA, err)
	}
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, fmt.Errorf("certificate file: %w", err)
	}
	chain, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate file %s: %w", f.Cert, err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !hasPrivateKey(keyPEM) {
		return nil, fmt.Errorf("key file %s: no PEM private key in it", f.Key)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("key file %s with certificate %s: %w", f.Key, f.Cert, err)
	}
	pair.Leaf = chain[0]
	m := &material{pool: x509.NewCertPool(), pair: &pair, chainOf: x509.NewCertPool(),
		verified: map[[sha256.Size]byte]struct{}{}}
	for _, ca := range cas {
		m.pool.AddCert(ca)
	}
	for _, c := range chain[1:] {
		m.chainOf.AddCert(c)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		_, err := chain[0].Verify(x509.VerifyOptions{Roots: m.pool, Intermediates: m.chainOf,
			KeyUsages: []x509.ExtKeyUsage{usage}})
		if err != nil {
			return nil, fmt.Errorf("certificate %s does not verify against the CA in %s: %w", f.Cert, f.CA, err)
		}
	}
	return m, nil
}

// parseCerts parses every CERTIFICATE block of a PEM file; it fails if there
// is none or one does not parse.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	return out, nil
}

func hasPrivateKey(b []byte) bool {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return false
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			return true
		}
	}
}

// verify checks that certs (leaf first, then intermediates) chain up to the
// CA in force and that the leaf may be used for usage.
func (m *material) verify(certs []*x509.Certificate, usage x509.ExtKeyUsage) error {
	if len(certs) == 0 {
		return errors.New("the peer presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: m.pool, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return fmt.Errorf("peer certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	return nil
}

// verifyClient is verify for client certificates, remembering the ones that
// passed so that PeerVerified, asked for every request on a connection,
// does not redo the signature checks.
func (m *material) verifyClient(certs []*x509.Certificate) error {
	if len(certs) == 0 {
		return m.verify(certs, x509.ExtKeyUsageClientAuth)
	}
	var raw bytes.Buffer
	for _, c := range certs {
		raw.Write(c.Raw)
	}
	key := sha256.Sum256(raw.Bytes())
	m.mu.RLock()
	_, ok := m.verified[key]
	m.mu.RUnlock()
	if ok && !expired(certs) {
		return nil
	}
	if err := m.verify(certs, x509.ExtKeyUsageClientAuth); err != nil {
		return err
	}
	m.mu.Lock()
	m.verified[key] = struct{}{} // only certificates the CA signed get here: few
	m.mu.Unlock()
	return nil
}

func expired(certs []*x509.Certificate) bool {
	now := time.Now()
	for _, c := range certs {
		if now.After(c.NotAfter) {
			return true
		}
	}
	return false
}

// PeerServer is the config of a node-to-node listener: it presents the
// node's certificate and requires a client certificate that verifies
// against the CA (chain and client-auth usage only: no host name is
// checked, since every certificate the CA signed is a member). TLS 1.3
// only; no session resumption, so every connection is verified against the
// CA in force when it opens.
func (s *Store) PeerServer() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		GetCertificate:         s.getCertificate,
		ClientAuth:             tls.RequireAnyClientCert, // verified in VerifyConnection
		VerifyConnection:       s.verifyClient,
		SessionTicketsDisabled: true,
	}
}

// PeerClient is the config for dialing another node: it presents the
// node's certificate and verifies the server's chain against the CA, without
// a host name check. TLS 1.3 only; no session resumption.
func (s *Store) PeerClient() *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetClientCertificate: s.getClientCertificate,
		// The chain is verified in VerifyConnection against the CA in force;
		// the standard check would also demand a matching host name.
		InsecureSkipVerify: true,
		VerifyConnection:   s.verifyServer,
	}
}

// Server is the config of the HTTPS client port: it presents the node's
// certificate. A client certificate, when the client sends one, must verify
// against the CA or the handshake fails; clientAuth says only whether one
// is required: NoClientCert asks for none, RequireAnyClientCert and
// RequireAndVerifyClientCert require one, RequestClientCert and
// VerifyClientCertIfGiven (the usual choice) accept a client without one.
// Use PeerVerified to tell whether a request came from a node. TLS 1.2 or
// later.
func (s *Store) Server(clientAuth tls.ClientAuthType) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.getCertificate}
	switch clientAuth {
	case tls.NoClientCert:
		c.ClientAuth = tls.NoClientCert
	case tls.RequireAnyClientCert, tls.RequireAndVerifyClientCert:
		c.ClientAuth = tls.RequireAnyClientCert
		c.VerifyConnection = s.verifyClient
	default:
		// Without ClientCAs, Go would verify a given certificate against
		// the system roots; the CA in force is checked in VerifyConnection.
		c.ClientAuth = tls.RequestClientCert
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			return s.verifyClient(cs)
		}
	}
	return c
}

// PeerVerified reports whether cs is a completed handshake in which the
// peer presented a client certificate that verifies against the CA in force
// now, that is, whether the connection comes from a node of the cluster.
// A connection opened before a Reload that dropped its CA no longer counts.
// It never blocks; a certificate's first check costs a signature
// verification, later ones a map lookup.
func (s *Store) PeerVerified(cs tls.ConnectionState) bool {
	return cs.HandshakeComplete && len(cs.PeerCertificates) > 0 &&
		s.cur.Load().verifyClient(cs.PeerCertificates) == nil
}

func (s *Store) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load().pair, nil
}

func (s *Store) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return s.cur.Load().pair, nil
}

func (s *Store) verifyClient(cs tls.ConnectionState) error {
	return s.cur.Load().verifyClient(cs.PeerCertificates)
}

func (s *Store) verifyServer(cs tls.ConnectionState) error {
	return s.cur.Load().verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
}
