// Package clientauth gives sessiond's command-line tools one way to present
// credentials: a bearer token and, for https:// nodes, the CA that signed
// the nodes' certificates and an optional client certificate. Every tool
// takes the same flags and environment variables.
package clientauth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
)

// Options are the credentials a tool presents to sessiond nodes.
type Options struct {
	Token string // bearer token; "" sends none
	CA    string // PEM file of the CA to trust for https://; "" trusts the system's
	Cert  string // PEM client certificate and key, both or neither
	Key   string
}

// FromEnv reads the options' defaults from SESSIOND_TOKEN, SESSIOND_CA,
// SESSIOND_CERT and SESSIOND_KEY. A token on the command line shows in the
// process list, so the variable is the better place for it.
func FromEnv(getenv func(string) string) Options {
	return Options{Token: getenv("SESSIOND_TOKEN"), CA: getenv("SESSIOND_CA"),
		Cert: getenv("SESSIOND_CERT"), Key: getenv("SESSIOND_KEY")}
}

// AddFlags registers --token, --ca, --cert and --key on fs with the
// current values as defaults, so registering them on several flag sets in
// turn keeps what an earlier one parsed.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Token, "token", o.Token, "bearer token sent to sessiond (default $SESSIOND_TOKEN, which keeps it out of the process list)")
	fs.StringVar(&o.CA, "ca", o.CA, "PEM file of the CA that signed the nodes' certificates, for https:// addresses (default $SESSIOND_CA)")
	fs.StringVar(&o.Cert, "cert", o.Cert, "PEM client certificate for https:// addresses (default $SESSIOND_CERT)")
	fs.StringVar(&o.Key, "key", o.Key, "PEM key of --cert (default $SESSIOND_KEY)")
}

// TLSConfig is the client TLS configuration the options describe, nil when
// they name no file (the system's roots, no client certificate).
func (o *Options) TLSConfig() (*tls.Config, error) {
	if o.CA == "" && o.Cert == "" && o.Key == "" {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CA != "" {
		pem, err := os.ReadFile(o.CA)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate in it", o.CA)
		}
		conf.RootCAs = pool
	}
	if (o.Cert == "") != (o.Key == "") {
		return nil, errors.New("--cert and --key go together")
	}
	if o.Cert != "" {
		pair, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf, nil
}

// Apply sets tr's TLS configuration from the options and returns a round
// tripper that adds the bearer token to every request.
func (o *Options) Apply(tr *http.Transport) (http.RoundTripper, error) {
	conf, err := o.TLSConfig()
	if err != nil {
		return nil, err
	}
	if conf != nil {
		tr.TLSClientConfig = conf
	}
	return Bearer(tr, o.Token), nil
}

// Bearer returns a round tripper that adds "Authorization: Bearer token" to
// every request that has no Authorization header; next itself when token is
// empty.
func Bearer(next http.RoundTripper, token string) http.RoundTripper {
	if token == "" {
		return next
	}
	return &bearer{next: next, token: "Bearer " + token}
}

// bearer adds an Authorization header to requests that have none.
type bearer struct {
	next  http.RoundTripper
	token string
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") != "" {
		return b.next.RoundTrip(r)
	}
	r = r.Clone(r.Context()) // a RoundTripper must not change its request
	r.Header.Set("Authorization", b.token)
	return b.next.RoundTrip(r)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// transport underneath.
func (b *bearer) CloseIdleConnections() {
	if c, ok := b.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
