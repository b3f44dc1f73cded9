package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

const usageHead = `usage: sessiond [flags]              run a node
       sessiond healthcheck [flags]  exit 0 when the node's /readyz answers 200
       sessiond certs init [flags]   write a cluster CA, node certificates, a gossip key and tokens
       sessiond version              print the version

Subcommands:
  healthcheck   the container health probe. --addr (default $SESSIOND_HTTP_ADDR,
                else 127.0.0.1:8080), --timeout, --tls (default: whether
                $SESSIOND_TLS_CERT is set). sessiond healthcheck --help for more.
  certs init    a throwaway CA and everything a development or compose cluster
                needs to run securely. sessiond certs init --help for more.
  version       the build version.

Signals: SIGTERM or SIGINT drains the node (at most --drain-timeout; a
second signal cuts it short), then stops it; SIGHUP reloads --token-file and
the certificates.

Flags of a node. Every flag can also be set with its environment variable,
SESSIOND_ and the flag name in upper case with _ for -, as shown; a flag on
the command line wins.

`

// envName is the environment variable that sets the flag name.
func envName(name string) string {
	return "SESSIOND_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// printUsage writes sessiond --help: the subcommands, then every flag of
// fs with its environment variable and default.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, usageHead)
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		name := "--" + f.Name
		if kind != "" {
			name += " " + kind
		}
		fmt.Fprintf(w, "  %s  $%s\n", name, envName(f.Name))
		switch {
		case f.DefValue == "" || f.DefValue == "0" || f.DefValue == "0s" || f.DefValue == "false":
		case strings.Contains(usage, "(default"): // the usage explains it
		case kind == "string":
			usage += fmt.Sprintf(" (default %q)", f.DefValue)
		default:
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "        %s\n", usage)
	})
}
