package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sessiond/sessiond/certs"
)

// Names of the secrets "certs init" writes next to the certificates.
const (
	gossipKeyFile = "gossip.key"
	tokensFile    = "tokens"
)

const certsUsage = `usage: sessiond certs init --dir DIR --node ID [--node ID ...] [--host NAME|IP ...] [--validity D] [--force]

Writes a throwaway cluster CA and everything a development or compose
cluster needs to run securely into DIR:

  ca.pem, ca-key.pem        the cluster CA (the key only issues certificates)
  ID.pem, ID-key.pem        each node's certificate and key, for the names ID,
                            localhost, 127.0.0.1, ::1 and every --host
  gossip.key                a random 32-byte gossip encryption key, base64
  tokens                    one random bearer token for each scope: admin, data, read

Keys, gossip.key and tokens are written with mode 0600. If every file already
exists, nothing is written and the exit status is 0, so a container entrypoint
may run it at every start; if only some exist, it fails. --force replaces them
all (with a new CA: every node needs the new files).
`

// certsCommand runs "sessiond certs ..." and returns the exit status.
func certsCommand(args []string) int { return runCerts(args, os.Stdout, os.Stderr) }

func runCerts(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "init" {
		fmt.Fprint(stderr, certsUsage)
		return 2
	}
	flags := flag.NewFlagSet("certs init", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, certsUsage, "\nflags:\n")
		flags.PrintDefaults()
	}
	var nodes, hosts listFlag
	dir := flags.String("dir", "", "directory to write the files into (created 0700 if missing)")
	flags.Var(&nodes, "node", "id of a node to issue a certificate for; repeat or separate with commas")
	flags.Var(&hosts, "host", "extra DNS name or IP address for every node's certificate; repeat or separate with commas")
	validity := flags.Duration("validity", 10*365*24*time.Hour, "how long the CA and the certificates are valid")
	force := flags.Bool("force", false, "replace files that already exist")
	if err := flags.Parse(args[1:]); err != nil {
		return 2
	}
	switch {
	case flags.NArg() > 0:
		fmt.Fprintf(stderr, "certs init: unexpected argument %q\n", flags.Arg(0))
		return 2
	case *dir == "":
		fmt.Fprintln(stderr, "certs init: --dir is required")
		return 2
	case len(nodes) == 0:
		fmt.Fprintln(stderr, "certs init: at least one --node is required")
		return 2
	case *validity <= 0:
		fmt.Fprintln(stderr, "certs init: --validity must be positive")
		return 2
	}
	files, err := certsInitFiles(nodes, hosts, *validity)
	if err != nil {
		fmt.Fprintln(stderr, "certs init:", err)
		return 1
	}
	if !*force {
		var exist, missing []string
		for _, f := range files {
			switch _, err := os.Lstat(filepath.Join(*dir, f.Name)); {
			case err == nil:
				exist = append(exist, f.Name)
			case errors.Is(err, fs.ErrNotExist):
				missing = append(missing, f.Name)
			default:
				fmt.Fprintln(stderr, "certs init:", err)
				return 1
			}
		}
		if len(missing) == 0 {
			fmt.Fprintf(stdout, "certs init: kept the existing files in %s (--force replaces them)\n", *dir)
			return 0
		}
		if len(exist) > 0 {
			fmt.Fprintf(stderr, "certs init: %s holds only some of the files: %s exist, %s do not; "+
				"remove them or use --force to replace them all\n",
				*dir, strings.Join(exist, ", "), strings.Join(missing, ", "))
			return 1
		}
	}
	if err := certs.WriteFiles(*dir, files, *force); err != nil {
		fmt.Fprintln(stderr, "certs init:", err)
		return 1
	}
	fmt.Fprintf(stdout, "certs init: wrote a new CA, certificates for %s, %s and %s in %s\n",
		strings.Join(nodes, ", "), gossipKeyFile, tokensFile, *dir)
	return 0
}

// certsInitFiles generates every file "certs init" writes.
func certsInitFiles(nodes, hosts []string, validity time.Duration) ([]certs.OutputFile, error) {
	files, err := certs.Generate(nodes, hosts, validity)
	if err != nil {
		return nil, err
	}
	key, err := randomBytes(32)
	if err != nil {
		return nil, err
	}
	files = append(files, certs.OutputFile{Name: gossipKeyFile,
		Data: []byte(base64.StdEncoding.EncodeToString(key) + "\n"), Mode: 0o600})

	var b strings.Builder
	b.WriteString(`# sessiond bearer tokens: one "SCOPE TOKEN" pair a line; blank lines and
# lines starting with # are ignored. A client sends "Authorization: Bearer TOKEN".
#   admin  everything: sessions, the operations API, drain and transfer
#   data   the session API under /api/chat/session
#   read   GET and HEAD of the operations API under /v1
# A token may appear on several lines to hold several scopes. Anyone who can
# read this file holds every token in it: keep it mode 0600.
`)
	for _, scope := range []string{"admin", "data", "read"} {
		tok, err := randomBytes(32)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s %s\n", scope, base64.RawURLEncoding.EncodeToString(tok))
	}
	return append(files, certs.OutputFile{Name: tokensFile, Data: []byte(b.String()), Mode: 0o600}), nil
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// listFlag is a flag that may be repeated, each value a comma-separated
// list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
