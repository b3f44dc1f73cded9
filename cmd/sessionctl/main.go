// Command sessionctl is the operator and user CLI of sessiond. It speaks only
// the public HTTP API, so it works against any node of any version that
// serves that API, and needs nothing but an address:
//
//	sessionctl --addr 127.0.0.1:8081 status
//	sessionctl owner demo-1
//	sessionctl drain node4 --wait
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sessiond/sessiond/internal/clientauth"
)

const defaultAddr = "http://127.0.0.1:8080"

// command is one subcommand. run declares the command's own flags on fs and
// parses args with app.parse, which adds the global flags, so every flag can
// be given before or after the command name and between its arguments.
type command struct {
	name, args, summary string
	run                 func(a *app, fs *flag.FlagSet, args []string) error
}

// commands lists the subcommands in the order help shows them. A file that
// adds a command may also register it from an init function.
var commands = []command{
	{"status", "", "members, shards, leaders per node and convergence, merged from every node (--watch refreshes)", cmdStatus},
	{"members", "", "the cluster's members", cmdMembers},
	{"shards", "", "every shard: leader, term, indexes, replicas and placement", cmdShards},
	{"owner", "ID", "the shard, leader and replicas of session ID", cmdOwner},
	{"get", "ID", "session ID as JSON", cmdGet},
	{"messages", "ID", "the messages of session ID, a page or --all, or --wait for new ones", cmdMessages},
	{"sessions", "", "list sessions in id order: messages, size, last update (--prefix, --limit, --all)", cmdSessions},
	{"watch", "ID", "print the change stream of session ID, reconnecting across nodes (--after, --count)", cmdWatch},
	{"alarms", "ID", "the pending alarms and recent fires of session ID", cmdAlarms},
	{"append", "ID ROLE TEXT", "append one message to session ID (creating it)", cmdAppend},
	{"put", "ID JSON", "merge the top-level fields of JSON (an object; - reads stdin) into session ID", cmdPut},
	{"patch", "ID JSON", "apply JSON as an RFC 7396 merge patch (- reads stdin) to the fields of session ID", cmdPatch},
	{"delete", "ID", "delete session ID, or one of its fields with --field", cmdDelete},
	{"transfer", "SHARD [NODE]", "move leadership of SHARD (to NODE, or to the best replica)", cmdTransfer},
	{"drain", "NODE", "drain NODE: move its replicas and leadership away, then it exits", cmdDrain},
	{"backup", "save|restore FILE", "save every shard to FILE, or restore FILE into a new, empty cluster (--consistency stale)", cmdBackup},
	{"version", "", "the version of sessionctl and of every node", cmdVersion},
}

// register adds a command defined in a file of its own.
func register(c command) { commands = append(commands, c) }

// app carries the global options and the process's I/O, so tests can run
// commands in-process against fake servers.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	addr           string
	timeout        time.Duration
	output         string
	creds          clientauth.Options
	// tty makes drain --wait overwrite its progress line in place.
	tty bool
	// pollEvery is drain --wait's polling period; tests shorten it.
	pollEvery time.Duration
}

// usageError is a bad command line: exit status 2 and a pointer to -h.
type usageError struct{ cmd, msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

func main() {
	fi, err := os.Stdout.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, tty: tty, pollEvery: time.Second}
	os.Exit(a.main(os.Args[1:], os.Getenv))
}

// main runs one command line and returns the exit status: 0 on success, 1
// when the cluster is unreachable or answers an error, 2 on a usage error.
func (a *app) main(args []string, getenv func(string) string) int {
	a.addr = defaultAddr
	if env := getenv("SESSIOND_ADDR"); env != "" {
		a.addr = env
	}
	a.timeout, a.output = 5*time.Second, "text"
	a.creds = clientauth.FromEnv(getenv)
	fs := flag.NewFlagSet("sessionctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.globalFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.usage(a.stdout)
			return 0
		}
		return a.fail(usagef("", "%v", err))
	}
	if fs.NArg() == 0 {
		a.usage(a.stderr)
		return 2
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if name == "help" {
		if len(rest) == 0 {
			a.usage(a.stdout)
			return 0
		}
		name, rest = rest[0], []string{"-h"}
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		cfs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		cfs.SetOutput(io.Discard)
		cfs.Usage = func() {}
		err := c.run(a, cfs, rest)
		if errors.Is(err, flag.ErrHelp) {
			a.commandUsage(c, cfs)
			return 0
		}
		return a.fail(err)
	}
	return a.fail(usagef("", "unknown command %q", name))
}

// fail prints err and maps it to the exit status.
func (a *app) fail(err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(a.stderr, "sessionctl: %s\n", errorText(err))
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.cmd != "" {
			fmt.Fprintf(a.stderr, "Run 'sessionctl %s -h' for usage.\n", ue.cmd)
		} else {
			fmt.Fprintln(a.stderr, "Run 'sessionctl help' for usage.")
		}
		return 2
	}
	return 1
}

func (a *app) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&a.addr, "addr", a.addr, "sessiond HTTP address(es): host:port or URL, comma-separated, tried in order (env SESSIOND_ADDR)")
	fs.DurationVar(&a.timeout, "timeout", a.timeout, "timeout of each HTTP request")
	fs.StringVar(&a.output, "o", a.output, "output format: text or json")
	fs.StringVar(&a.output, "output", a.output, "output format: text or json")
	a.creds.AddFlags(fs)
}

// parse parses a command's flags, which may be interleaved with its
// arguments ("drain node4 --wait"), and checks the number of arguments; "--"
// ends the flags, so a message text may start with "-".
func (a *app) parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	a.globalFlags(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef(fs.Name(), "%v", err)
		}
		consumed, rest := len(args)-fs.NArg(), fs.Args()
		if consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...) // everything after "--" is an argument
			break
		}
		if len(rest) == 0 {
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	switch {
	case a.output != "text" && a.output != "json":
		return nil, usagef(fs.Name(), "output must be text or json, not %q", a.output)
	case a.timeout <= 0:
		return nil, usagef(fs.Name(), "--timeout must be positive")
	case len(pos) < minArgs || len(pos) > maxArgs:
		want := fmt.Sprint(minArgs)
		if maxArgs > minArgs {
			want = fmt.Sprintf("%d to %d", minArgs, maxArgs)
		}
		return nil, usagef(fs.Name(), "%s takes %s argument(s), got %d", fs.Name(), want, len(pos))
	}
	return pos, nil
}

func (a *app) usage(w io.Writer) {
	fmt.Fprint(w, `sessionctl operates a sessiond cluster over its HTTP API.

Usage: sessionctl [global flags] COMMAND [arguments] [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-26s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprint(w, `  help [COMMAND]             this text, or a command's

Global flags (also accepted after the command):
  --addr ADDRS     host:port or URL of sessiond, comma-separated; each is tried
                   in order until one answers (default $SESSIOND_ADDR, else `+defaultAddr+`)
  --timeout D      timeout of each HTTP request (default 5s)
  -o, --output F   text or json (default text)
  --token T        bearer token (default $SESSIOND_TOKEN, which keeps it out of the process list)
  --ca FILE        CA of the nodes' certificates, for https:// addresses (default $SESSIOND_CA)
  --cert FILE, --key FILE
                   client certificate and key for https:// (default $SESSIOND_CERT, $SESSIOND_KEY)

Exit status: 0 on success, 1 when sessiond is unreachable or answers an
error, 2 on a usage error.
`)
}

func (a *app) commandUsage(c command, fs *flag.FlagSet) {
	fmt.Fprintf(a.stdout, "Usage: sessionctl %s\n\n%s\n", strings.TrimSpace(c.name+" "+c.args+" [flags]"), c.summary)
	global := flag.NewFlagSet("global", flag.ContinueOnError)
	(&app{}).globalFlags(global)
	var own []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if global.Lookup(f.Name) == nil {
			own = append(own, f)
		}
	})
	if len(own) > 0 {
		fmt.Fprint(a.stdout, "\nFlags:\n")
		for _, f := range own {
			printFlag(a.stdout, f)
		}
	}
	fmt.Fprint(a.stdout, "\nGlobal flags (--addr, --timeout, -o/--output, --token, --ca, --cert, --key): see 'sessionctl help'.\n")
}

// printFlag shows a flag in its --name form, as the global help does.
func printFlag(w io.Writer, f *flag.Flag) {
	kind, usage := flag.UnquoteUsage(f)
	name := "--" + f.Name
	if kind != "" {
		name += " " + kind
	}
	fmt.Fprintf(w, "  %s\n      %s", name, usage)
	if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
		fmt.Fprintf(w, " (default %s)", f.DefValue)
	}
	fmt.Fprintln(w)
}

// Output helpers shared by the commands.

// printBody pretty-prints a JSON answer as is: re-encoding through a Go
// value would reorder a session's fields and lose number precision.
func (a *app) printBody(body []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(body), "", "  "); err != nil {
		_, err = a.stdout.Write(body)
		return err
	}
	buf.WriteByte('\n')
	_, err := a.stdout.Write(buf.Bytes())
	return err
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
