package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Names of the CA files in a directory written by WriteDir.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
)

// clockSkew backdates every certificate, so that a node whose clock is a
// little behind the generating machine's accepts it at once.
const clockSkew = time.Hour

// CA is a certificate authority that issues node certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA creates a self-signed ECDSA P-256 CA valid for validity. Its common
// name carries a random suffix, so that two generated CAs can be told apart
// in error messages.
func NewCA(validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("sessiond cluster CA %08x", serial.Uint64()&0xffffffff)},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CertPEM is the CA certificate in PEM.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// KeyPEM is the CA's private key in PKCS #8 PEM.
func (ca *CA) KeyPEM() ([]byte, error) { return keyPEM(ca.Key) }

// NewNodeCert issues a certificate and key signed by ca for the node name,
// valid for validity and usable for both server and client authentication.
// Its subject alternative names are name and hosts, each an IP address or
// a DNS name.
func NewNodeCert(ca *CA, name string, hosts []string, validity time.Duration) (certPEM, keyPEMBytes []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	seen := map[string]bool{}
	for _, h := range append([]string{name}, hosts...) {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue the certificate of %s: %w", name, err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), kp, nil
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// OutputFile is one file to write into a directory.
type OutputFile struct {
	Name string // file name, without directory
	Data []byte
	Mode fs.FileMode
}

// nodeName is what a node id must look like to name its files.
var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Generate creates a CA and a certificate for each of nodes, all valid for
// validity, as the files ca.pem, ca-key.pem and, for each node, <node>.pem
// and <node>-key.pem. Keys get mode 0600, certificates 0644. A node's
// certificate names the node, localhost, 127.0.0.1, ::1 and hosts.
func Generate(nodes, hosts []string, validity time.Duration) ([]OutputFile, error) {
	if len(nodes) == 0 {
		return nil, errors.New("no node to issue a certificate for")
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		switch {
		case !nodeName.MatchString(n):
			return nil, fmt.Errorf("node id %q: want 1 to 64 of A-Z a-z 0-9 . _ -, not starting with . _ -", n)
		case n == "ca" || strings.HasSuffix(n, "-key"):
			return nil, fmt.Errorf("node id %q would clash with another file's name", n)
		case seen[n]:
			return nil, fmt.Errorf("node id %q given twice", n)
		}
		seen[n] = true
	}
	ca, err := NewCA(validity)
	if err != nil {
		return nil, err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	out := []OutputFile{{CAFile, ca.CertPEM(), 0o644}, {CAKeyFile, caKey, 0o600}}
	sans := append([]string{"localhost", "127.0.0.1", "::1"}, hosts...)
	for _, n := range nodes {
		cert, key, err := NewNodeCert(ca, n, sans, validity)
		if err != nil {
			return nil, err
		}
		out = append(out, OutputFile{n + ".pem", cert, 0o644}, OutputFile{n + "-key.pem", key, 0o600})
	}
	return out, nil
}

// DirFiles names the files of node in a directory written by WriteDir.
func DirFiles(dir, node string) Files {
	return Files{
		CA:   filepath.Join(dir, CAFile),
		Cert: filepath.Join(dir, node+".pem"),
		Key:  filepath.Join(dir, node+"-key.pem"),
	}
}

// WriteDir generates a CA and node certificates (see Generate) and writes
// them into dir with WriteFiles.
func WriteDir(dir string, nodes, hosts []string, validity time.Duration, overwrite bool) error {
	files, err := Generate(nodes, hosts, validity)
	if err != nil {
		return err
	}
	return WriteFiles(dir, files, overwrite)
}

// WriteFiles writes files into dir, creating it with mode 0700 if needed.
// Each file gets exactly its Mode, whatever the umask. Unless overwrite is
// set it writes nothing if any of the files exists, and the error wraps
// fs.ErrExist and names them; if a write fails, the files it created are
// removed. With overwrite, each file is replaced atomically.
func WriteFiles(dir string, files []OutputFile, overwrite bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if !overwrite {
		var exist []string
		for _, f := range files {
			if _, err := os.Lstat(filepath.Join(dir, f.Name)); err == nil {
				exist = append(exist, f.Name)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if len(exist) > 0 {
			return fmt.Errorf("%w in %s: %s", fs.ErrExist, dir, strings.Join(exist, ", "))
		}
	}
	var created []string
	for _, f := range files {
		path := filepath.Join(dir, f.Name)
		var err error
		if overwrite {
			err = replaceFile(path, f.Data, f.Mode)
		} else {
			err = createFile(path, f.Data, f.Mode)
		}
		if err != nil {
			for _, p := range created {
				os.Remove(p)
			}
			return err
		}
		created = append(created, path)
	}
	return nil
}

// createFile writes a new file; it fails if path exists.
func createFile(path string, data []byte, mode fs.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	return writeAndClose(f, data, mode)
}

// replaceFile writes data to a temporary file next to path and renames it
// over path.
func replaceFile(path string, data []byte, mode fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if err := writeAndClose(f, data, mode); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func writeAndClose(f *os.File, data []byte, mode fs.FileMode) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return nil
}
