package certs

import (
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
)

// KeyPair is a certificate and key loaded from PEM files and reloadable,
// without any check against the cluster CA: it is what the client port
// presents when it has a certificate of its own (one from a public CA, say).
// It is safe for concurrent use.
type KeyPair struct {
	cert, key string
	reload    sync.Mutex
	cur       atomic.Pointer[tls.Certificate]
}

// LoadKeyPair reads the pair; the error names what is wrong.
func LoadKeyPair(certFile, keyFile string) (*KeyPair, error) {
	kp := &KeyPair{cert: certFile, key: keyFile}
	if err := kp.Reload(); err != nil {
		return nil, err
	}
	return kp, nil
}

// Reload reads the files again; on error the pair in force stays.
func (kp *KeyPair) Reload() error {
	kp.reload.Lock()
	defer kp.reload.Unlock()
	pair, err := tls.LoadX509KeyPair(kp.cert, kp.key)
	if err != nil {
		return fmt.Errorf("%s, %s: %w", kp.cert, kp.key, err)
	}
	kp.cur.Store(&pair)
	return nil
}

// GetCertificate is a tls.Config.GetCertificate serving the pair in force.
func (kp *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return kp.cur.Load(), nil
}
