package client_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/sessiond/sessiond/auth"
	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/internal/testnode"
)

func TestTokensAreSentAndMissingOrWeakOnesAreTypedErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	const dataToken, readToken = "data-token-0123456789abcdef", "read-token-0123456789abcdef"
	if err := os.WriteFile(path, []byte("data "+dataToken+"\nread "+readToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tf, err := auth.LoadTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := testnode.Start(t, testnode.Options{API: func(c *httpapi.Config) { c.Auth = &auth.Authenticator{Tokens: tf} }})[0]
	ctx := ctx(t)
	msg := []client.Message{{ID: "m1", Role: "user", Content: "hi"}}

	anon := newClient(t, client.Config{Endpoints: []string{n.URL}})
	if _, err := anon.Append(ctx, "tok", msg); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("no token: %v, want unauthorized", err)
	}
	reader := newClient(t, client.Config{Endpoints: []string{n.URL}, Token: readToken})
	if _, err := reader.Append(ctx, "tok", msg); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("read token writing: %v, want forbidden", err)
	}
	writer := newClient(t, client.Config{Endpoints: []string{n.URL}, Token: dataToken})
	if _, err := writer.Append(ctx, "tok", msg); err != nil {
		t.Fatalf("data token: %v", err)
	}
	if p, err := reader.Sessions(ctx, client.ListQuery{}); err != nil || len(p.Sessions) != 1 {
		t.Fatalf("read token listing: %+v, %v", p, err)
	}
}

func TestHTTPSEndpointsAreTrustedThroughTheGivenCA(t *testing.T) {
	n := testnode.Start(t, testnode.Options{})[0]
	u, _ := url.Parse(n.URL)
	front := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(u))
	t.Cleanup(front.Close)
	ctx := ctx(t)

	untrusting := newClient(t, client.Config{Endpoints: []string{front.URL}, MaxAttempts: 1})
	if _, err := untrusting.Cluster(ctx); !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("unknown CA: %v, want unreachable (certificate not trusted)", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(front.Certificate())
	c := newClient(t, client.Config{Endpoints: []string{front.URL}, TLS: &tls.Config{RootCAs: pool}})
	cs, err := c.Cluster(ctx)
	if err != nil || cs.Node != "n1" || cs.Version != "test" {
		t.Fatalf("Cluster over https: %+v, %v", cs, err)
	}
}
