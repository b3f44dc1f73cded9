package clientauth

import (
	"encoding/pem"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestApplyTrustsTheCAAndSendsTheToken(t *testing.T) {
	var got string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	// Without the CA the server's certificate is not trusted.
	plain := Options{Token: "tok-0123456789abcdef"}
	rt, err := plain.Apply(&http.Transport{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&http.Client{Transport: rt}).Get(srv.URL); err == nil {
		t.Fatal("a server signed by an unknown CA was trusted")
	}

	o := Options{Token: "tok-0123456789abcdef", CA: ca}
	rt, err = o.Apply(&http.Transport{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: rt}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != "Bearer tok-0123456789abcdef" {
		t.Fatalf("Authorization = %q", got)
	}
}

func TestFlagsOverrideTheEnvironmentAndSurviveReRegistration(t *testing.T) {
	env := map[string]string{"SESSIOND_TOKEN": "from-env", "SESSIOND_CA": "/env/ca.pem"}
	o := FromEnv(func(k string) string { return env[k] })
	global := flag.NewFlagSet("global", flag.ContinueOnError)
	o.AddFlags(global)
	if err := global.Parse([]string{"--token", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	sub := flag.NewFlagSet("sub", flag.ContinueOnError)
	o.AddFlags(sub) // a subcommand registers the flags again
	if err := sub.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if o.Token != "from-flag" || o.CA != "/env/ca.pem" {
		t.Fatalf("options = %+v", o)
	}
}

func TestTLSConfigRefusesHalfAKeyPairAndMissingFiles(t *testing.T) {
	for _, o := range []Options{{Cert: "x.pem"}, {Key: "x.pem"}, {CA: filepath.Join(t.TempDir(), "missing.pem")}} {
		if _, err := o.TLSConfig(); err == nil {
			t.Errorf("%+v: accepted", o)
		}
	}
	if c, err := (&Options{Token: "t"}).TLSConfig(); c != nil || err != nil {
		t.Fatalf("no files: %v %v, want nil nil", c, err)
	}
}
