package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sessiond/sessiond/auth"
	"github.com/sessiond/sessiond/certs"
	"github.com/sessiond/sessiond/cluster"
)

// credentials are the node's secrets loaded from files: what clients must
// present, and what the node presents to its peers. SIGHUP reloads them.
type credentials struct {
	tokens *auth.TokenFile // nil without --token-file
	node   *certs.Store    // nil without TLS
	client *certs.KeyPair  // the client port's own pair; nil to use node's
}

func loadCredentials(cfg *config) (*credentials, error) {
	c := &credentials{}
	if cfg.TokenFile != "" {
		t, err := auth.LoadTokenFile(cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		c.tokens = t
	}
	if cfg.TLS() {
		s, err := certs.Load(certs.Files{CA: cfg.TLSCA, Cert: cfg.TLSCert, Key: cfg.TLSKey})
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		c.node = s
	}
	if cfg.ClientTLSCert != "" {
		kp, err := certs.LoadKeyPair(cfg.ClientTLSCert, cfg.ClientTLSKey)
		if err != nil {
			return nil, fmt.Errorf("client TLS: %w", err)
		}
		c.client = kp
	}
	if c.tokens != nil && c.node == nil && c.tokens.Tokens().NodeToken() == "" {
		return nil, fmt.Errorf("token file %s has no admin token: without TLS, nodes call each other with the first one", cfg.TokenFile)
	}
	return c, nil
}

// authenticator is what the HTTP layer checks requests with; nil when the
// node has no tokens configured and serves everyone. A request over a TLS
// connection with a certificate the cluster CA signed comes from a node.
func (c *credentials) authenticator() *auth.Authenticator {
	if c.tokens == nil {
		return nil
	}
	a := &auth.Authenticator{Tokens: c.tokens}
	if c.node != nil {
		a.IsPeer = c.node.PeerVerified
	}
	return a
}

// peerToken is the bearer token the node sends to other nodes' HTTP ports:
// nil without a token file, or with TLS, where its certificate speaks for
// it.
func (c *credentials) peerToken() func() string {
	if c.tokens == nil || c.node != nil {
		return nil
	}
	return func() string { return c.tokens.Tokens().NodeToken() }
}

// peerTLS is how the node dials other nodes' HTTP ports; nil without TLS.
// It presents the node certificate. A client port with a certificate of its
// own (--client-tls-cert) is trusted when that certificate verifies against
// the system's roots for the host dialed.
func (c *credentials) peerTLS() *tls.Config {
	if c.node == nil {
		return nil
	}
	conf := c.node.PeerClient()
	if c.client != nil {
		clusterCA := conf.VerifyConnection
		conf.VerifyConnection = func(cs tls.ConnectionState) error {
			err := clusterCA(cs)
			if err == nil || len(cs.PeerCertificates) == 0 {
				return err
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, perr := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: cs.ServerName, Intermediates: inter})
			return perr
		}
	}
	return conf
}

// raftTLS secures the raft port; nil without TLS.
func (c *credentials) raftTLS() *cluster.RaftTLS {
	if c.node == nil {
		return nil
	}
	return &cluster.RaftTLS{Server: c.node.PeerServer(), Client: c.node.PeerClient()}
}

// clientTLS is the client port's configuration; nil without TLS. Client
// certificates are optional there and, when given, must come from the
// cluster CA: that is how other nodes identify themselves.
func (c *credentials) clientTLS() *tls.Config {
	if c.node == nil {
		return nil
	}
	conf := c.node.Server(tls.VerifyClientCertIfGiven)
	if c.client != nil {
		conf.GetCertificate = c.client.GetCertificate
	}
	return conf
}

// reload re-reads every credential file; a file that fails keeps its old
// contents in force.
func (c *credentials) reload(logger *slog.Logger) {
	report := func(what string, err error) {
		if err != nil {
			logger.Error("reloading "+what+" failed; the previous ones stay in force", "err", err)
		} else {
			logger.Info("reloaded " + what)
		}
	}
	if c.tokens != nil {
		report("tokens", c.tokens.Reload())
	}
	if c.node != nil {
		report("TLS certificates", c.node.Reload())
	}
	if c.client != nil {
		report("client port certificate", c.client.Reload())
	}
}

// reloadOnSIGHUP reloads credentials on every SIGHUP until ctx ends.
func reloadOnSIGHUP(ctx context.Context, c *credentials, logger *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			c.reload(logger)
		}
	}
}
