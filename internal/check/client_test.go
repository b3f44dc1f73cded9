package check

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sessiond/sessiond/internal/clientauth"
)

// Against a secured node every request trusts the node's CA and carries
// the token; without them the same request fails.
func TestRequestsPresentTheCredentials(t *testing.T) {
	var drained atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, `{"error":{"code":"unauthorized"}}`, http.StatusUnauthorized)
			return
		}
		if r.Method == "POST" && r.URL.Path == "/v1/nodes/n1/drain" {
			drained.Add(1)
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := []Node{{Name: "n1", URL: "https://127.0.0.1:1"}, {Name: "n2", URL: srv.URL}}

	creds, err := LoadCredentials(clientauth.Options{CA: ca, Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if err := RequestDrain(context.Background(), creds, nodes, "n1"); err != nil || drained.Load() != 1 {
		t.Fatalf("drain with the CA and the token: %v (%d drains reached the node)", err, drained.Load())
	}
	noToken := creds
	noToken.Token = ""
	if err := RequestDrain(context.Background(), noToken, nodes, "n1"); err == nil {
		t.Fatal("drain without the token succeeded")
	}
	if err := RequestDrain(context.Background(), Credentials{Token: "s3cret"}, nodes, "n1"); err == nil {
		t.Fatal("drain without the CA succeeded")
	}
	if n := drained.Load(); n != 1 {
		t.Fatalf("%d drains reached the node, want 1", n)
	}
	if _, err := LoadCredentials(clientauth.Options{CA: filepath.Join(t.TempDir(), "missing.pem")}); err == nil {
		t.Fatal("a missing CA file loaded")
	}
}
