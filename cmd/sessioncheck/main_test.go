package main

import (
	"io"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/internal/check"
)

func TestFlagsRejectWhatCannotRun(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--addrs", "127.0.0.1:8080", "--faults", "kill"}, "injects no faults"},
		{[]string{"--faults", "kill,meteor"}, `unknown fault "meteor"`},
		{[]string{"--duration", "0s"}, "must be positive"},
		{[]string{"--stream-readers", "-1"}, "must not be negative"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

func TestFlagsPickTheTargetAndFaults(t *testing.T) {
	o, err := parseFlags([]string{"--addrs", "127.0.0.1:8080"}, io.Discard)
	if err != nil || o.target != "addrs" || o.faults != "" {
		t.Fatalf("--addrs alone: %+v, %v; want target addrs without faults", o, err)
	}
	o, err = parseFlags(nil, io.Discard)
	if err != nil || o.target != "local" || len(splitList(o.faults)) != len(check.AllFaults) {
		t.Fatalf("no flags: %+v, %v; want target local with every fault", o, err)
	}
	if o.streamReaders != check.DefaultStreamReaders {
		t.Fatalf("no flags: %d stream readers, want %d", o.streamReaders, check.DefaultStreamReaders)
	}
	if o, err = parseFlags([]string{"--stream-readers", "0"}, io.Discard); err != nil || o.streamReaders != 0 {
		t.Fatalf("--stream-readers 0: %+v, %v", o, err)
	}
	for _, args := range [][]string{
		{"--faults", "none"},
		{"--target", "compose", "--faults", "none"},
		{"--addrs", "127.0.0.1:8080", "--faults", "none"},
	} {
		o, err = parseFlags(args, io.Discard)
		if err != nil || o.faults != "" {
			t.Fatalf("%v: %+v, %v; want no faults", args, o, err)
		}
	}
	if _, err = parseFlags([]string{"--faults", "none,kill"}, io.Discard); err == nil {
		t.Fatal("--faults none,kill accepted")
	}
	o, err = parseFlags([]string{"--target", "compose", "--faults", "pause, partition"}, io.Discard)
	if err != nil || strings.Join(splitList(o.faults), "|") != "pause|partition" {
		t.Fatalf("--faults list: %+v, %v", o, err)
	}
}

func TestExitStatusTwoWhenTheRunCannotStart(t *testing.T) {
	var stderr strings.Builder
	if code := run([]string{"--addrs", "127.0.0.1:1", "--duration", "1s", "--start-timeout", "1s"}, io.Discard, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2 (no cluster there); stderr: %s", code, stderr.String())
	}
}

func TestExplainNamesTheOperationThatCannotBePlaced(t *testing.T) {
	var out strings.Builder
	code := run([]string{"explain", "../../internal/check/testdata/late-append-after-delete.jsonl"}, &out, io.Discard)
	if code != 1 || !strings.Contains(out.String(), "could not be placed next") {
		t.Fatalf("exit %d, output:\n%s", code, out.String())
	}
	if code := run([]string{"explain"}, io.Discard, io.Discard); code != 2 {
		t.Fatalf("explain without a file: exit %d, want 2", code)
	}
}

func TestComposeNodeSecurityFromItsEnvironmentAndArguments(t *testing.T) {
	for _, tc := range []struct {
		out            string
		useTLS, tokens bool
	}{
		{"PATH=/bin\nSESSIOND_HTTP_ADDR=0.0.0.0:8080\n", false, false},
		{"SESSIOND_TLS_CERT=/secrets/node1.pem\nSESSIOND_TOKEN_FILE=/secrets/tokens\n", true, true},
		{"SESSIOND_TLS_CERT=\nSESSIOND_TOKEN_FILE=\n--insecure\n", false, false},
		{"PATH=/bin\n--tls-cert=/x.pem\n-token-file\n/tokens\n", true, true},
	} {
		useTLS, tokens := parseNodeSecurity(tc.out)
		if useTLS != tc.useTLS || tokens != tc.tokens {
			t.Errorf("%q: TLS %v, tokens %v; want %v, %v", tc.out, useTLS, tokens, tc.useTLS, tc.tokens)
		}
	}
}

func TestExitStatusTwoWhenTheCAFileIsMissing(t *testing.T) {
	var stderr strings.Builder
	code := run([]string{"--addrs", "https://127.0.0.1:1", "--ca", t.TempDir() + "/none.pem", "--duration", "1s"}, io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "--ca") {
		t.Fatalf("exit %d, want 2 naming --ca; stderr: %s", code, stderr.String())
	}
}

// TestVersionNamesTheBuild: `sessioncheck version` prints the build's
// version and starts nothing.
func TestVersionNamesTheBuild(t *testing.T) {
	var out strings.Builder
	if code := run([]string{"version"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if v := strings.TrimPrefix(strings.TrimSpace(out.String()), "sessioncheck "); v == "" || v == strings.TrimSpace(out.String()) {
		t.Fatalf("version printed %q", out.String())
	}
}
