package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sessiond/sessiond/certs"
)

// A session listing reaches the shards a node holds no replica of over the
// node's own peer credentials: its admin token when tokens are configured
// without TLS, its certificate with TLS. The client's read token is enough
// for the listing, not for the node-to-node route behind it.
func TestListingAsksOtherNodesWithTheNodesCredentials(t *testing.T) {
	for _, secured := range []bool{false, true} {
		name := "tokens"
		if secured {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			tokens := writeTokenFile(t)
			var setup func(i int, p *proc)
			if secured {
				dir := t.TempDir()
				if err := certs.WriteDir(dir, []string{"n1", "n2", "n3"}, nil, time.Hour, false); err != nil {
					t.Fatal(err)
				}
				key := make([]byte, 32)
				rand.Read(key)
				hc := httpsClient(t, filepath.Join(dir, certs.CAFile), nil)
				setup = func(i int, p *proc) {
					f := certs.DirFiles(dir, fmt.Sprintf("n%d", i+1))
					p.extraArgs = append(p.extraArgs, "--tls-ca", f.CA, "--tls-cert", f.Cert, "--tls-key", f.Key,
						"--gossip-key", base64.StdEncoding.EncodeToString(key), "--token-file", tokens, "--replicas", "1")
					p.tlsClient = hc
				}
			} else {
				setup = func(_ int, p *proc) { p.extraArgs = append(p.extraArgs, "--token-file", tokens, "--replicas", "1") }
			}
			procs := startClusterWith(t, 3, 8, setup)

			var want []string
			for i := 0; i < 60; i++ {
				id := fmt.Sprintf("ls-%02d", i)
				p := procs[i%len(procs)]
				// Until gossip has spread who leads what, a node may not
				// know where to forward: retry 503s as a client would.
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					code, body := doWith(t, p.client(), http.MethodPut, p.url("/api/chat/session/"+id), dataToken, `{"k":1}`)
					if code == http.StatusCreated {
						break
					}
					if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
						t.Fatalf("create %s = %d %s", id, code, body)
					}
				}
				want = append(want, id)
			}
			for _, p := range procs {
				code, body := doWith(t, p.client(), http.MethodGet, p.url("/v1/cluster"), readToken, "")
				var v struct{ Shards []struct{ Local bool } }
				if code != http.StatusOK || json.Unmarshal(body, &v) != nil {
					t.Fatalf("GET /v1/cluster = %d %s", code, body)
				}
				local := 0
				for _, s := range v.Shards {
					if s.Local {
						local++
					}
				}
				if local == 8 {
					t.Fatalf("%s holds every shard; the test needs nodes that do not", p.httpAddr())
				}

				var got []string
				for after := ""; ; {
					q := url.Values{"limit": {"7"}, "after": {after}}
					code, body := doWith(t, p.client(), http.MethodGet, p.url("/v1/sessions?"+q.Encode()), readToken, "")
					var l struct {
						Sessions []struct{ ID string }
						Next     string
					}
					if code != http.StatusOK || json.Unmarshal(body, &l) != nil {
						t.Fatalf("GET /v1/sessions?%s on %s = %d %s", q.Encode(), p.httpAddr(), code, body)
					}
					for _, s := range l.Sessions {
						got = append(got, s.ID)
					}
					if after = l.Next; after == "" {
						break
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s lists %v, want %v", p.httpAddr(), got, want)
				}
				if code, body := doWith(t, p.client(), http.MethodGet, p.url("/v1/sessions"), "", ""); code != http.StatusUnauthorized {
					t.Fatalf("listing without a token = %d %s", code, body)
				}
				if code, body := doWith(t, p.client(), http.MethodGet, p.url("/internal/v1/shards/0/sessions"), readToken, ""); code != http.StatusForbidden {
					t.Fatalf("the node-to-node route with a read token = %d %s", code, body)
				}
			}
		})
	}
}
