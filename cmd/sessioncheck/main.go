// Command sessioncheck runs a concurrent workload against a sessiond
// cluster while it injects faults, then checks what the cluster answered:
// linearizability per session (porcupine), durability of every
// acknowledged append, agreement of every replica, and what the change
// streams of a sample of sessions deliver (--stream-readers).
//
//	sessioncheck --target local --nodes 3 --binary ./sessiond --duration 2m
//	sessioncheck --target compose --faults kill,partition,pause --json
//	sessioncheck --addrs 127.0.0.1:8081,127.0.0.1:8082   (no faults)
//	sessioncheck explain OUT/violations/SESSION.jsonl     (why a session failed)
//
// Against a secured cluster (compose, or https:// --addrs) it trusts the CA
// of --ca and sends the token of --token (default $SESSIOND_CA and
// $SESSIOND_TOKEN); the token needs the admin scope for drains.
//
// Exit status: 0 when every check passed, 1 on a violation, 2 when the run
// could not be carried out.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/internal/check"
	"github.com/sessiond/sessiond/internal/clientauth"
	buildversion "github.com/sessiond/sessiond/internal/version"
)

// stopTimeout bounds a graceful stop or a drain: a node still running after
// it is hung, which is a bug to report, not a state to wait out.
const stopTimeout = 60 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	target, addrs, binary, dataDir, faults, out string
	nodes, streamReaders                        int
	netns                                       string
	compose                                     composeOptions
	duration, warmup, interval, checkTimeout    time.Duration
	startTimeout                                time.Duration
	seed                                        uint64
	jsonOut, keep                               bool
	workload                                    check.WorkloadConfig
	auth                                        clientauth.Options
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{workload: check.DefaultWorkload()}
	fs := flag.NewFlagSet("sessioncheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.target, "target", "", "local (start own sessiond processes), compose (drive the compose cluster) or addrs (an existing cluster, no faults); default addrs when --addrs is set, else local")
	fs.StringVar(&o.addrs, "addrs", "", "comma-separated host:port HTTP addresses of an existing cluster")
	fs.IntVar(&o.nodes, "nodes", 3, "local: cluster size")
	fs.StringVar(&o.binary, "binary", "", "local: the sessiond binary (default: build ./cmd/sessiond)")
	fs.StringVar(&o.dataDir, "data-dir", "", "local: parent of the nodes' data directories (default: a fresh temporary directory)")
	fs.StringVar(&o.netns, "netns", "auto", "local: run each node in its own network namespace so a partition is a link taken down: on, off or auto (on when root and ip(8) are available); without namespaces partitions are cut in loopback proxies in front of every node's ports")
	fs.BoolVar(&o.keep, "keep", false, "local: keep data directories and logs after a passing run")
	fs.StringVar(&o.compose.project, "compose-project", envOr("COMPOSE_PROJECT_NAME", "sessiond"), "compose: project name")
	fs.StringVar(&o.compose.file, "compose-file", "docker-compose.yml", "compose: the compose file")
	fs.StringVar(&o.compose.services, "compose-services", "node1,node2,node3", "compose: the node services")
	fs.StringVar(&o.faults, "faults", "", "faults to inject, comma-separated: "+strings.Join(check.AllFaults, ",")+", all, or none to inject no fault (default all for local and compose, none for addrs)")
	fs.DurationVar(&o.interval, "fault-interval", 10*time.Second, "quiet time between faults")
	fs.DurationVar(&o.duration, "duration", 2*time.Minute, "how long the workload runs")
	fs.DurationVar(&o.warmup, "warmup", 10*time.Second, "workload time before the first fault")
	fs.DurationVar(&o.startTimeout, "start-timeout", 2*time.Minute, "how long to wait for a healthy cluster before starting")
	fs.DurationVar(&o.checkTimeout, "check-timeout", 5*time.Minute, "porcupine time limit per session; running out fails the run")
	fs.Uint64Var(&o.seed, "seed", uint64(time.Now().UnixNano()%1e6), "seed of the workload and the fault schedule")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON on stdout")
	fs.StringVar(&o.out, "out", "", "directory for history.jsonl, report.json and, on a violation, porcupine's visualization (default: a temporary directory, kept on failure)")
	fs.IntVar(&o.workload.Clients, "clients", o.workload.Clients, "logical clients, one outstanding request each")
	fs.IntVar(&o.workload.Sessions, "sessions", o.workload.Sessions, "sessions written at once")
	fs.IntVar(&o.workload.OpsPerSession, "ops-per-session", o.workload.OpsPerSession, "operations before a session is replaced by a fresh one")
	fs.DurationVar(&o.workload.RequestTimeout, "request-timeout", o.workload.RequestTimeout, "timeout of one HTTP request")
	fs.IntVar(&o.streamReaders, "stream-readers", check.DefaultStreamReaders, "sessions whose change streams are followed at once, each from its start to its retirement, reconnecting across nodes; what they deliver is checked (0: none)")
	o.auth = clientauth.FromEnv(os.Getenv)
	o.auth.AddFlags(fs) // compose and addrs; the local target's nodes need none
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.target == "" {
		o.target = "local"
		if o.addrs != "" {
			o.target = "addrs"
		}
	}
	switch {
	case strings.TrimSpace(o.faults) == "none":
		o.faults = "" // a run with no faults, on any target
	case o.faults == "" && o.target != "addrs", o.faults == "all":
		o.faults = strings.Join(check.AllFaults, ",")
	}
	if o.target == "addrs" && o.faults != "" {
		return nil, errors.New("--target addrs injects no faults; drop --faults or pass --faults none")
	}
	if err := check.ValidFaults(splitList(o.faults)); err != nil {
		return nil, err
	}
	if o.duration <= 0 || o.workload.Clients < 1 || o.workload.Sessions < 1 || o.nodes < 1 {
		return nil, errors.New("--duration, --clients, --sessions and --nodes must be positive")
	}
	if o.streamReaders < 0 {
		return nil, errors.New("--stream-readers must not be negative")
	}
	o.workload.Seed = o.seed
	o.workload.RunID = fmt.Sprintf("chk%d-%d", o.seed, time.Now().Unix()%1e5)
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "explain" {
		return explain(args[1:], stdout, stderr)
	}
	if len(args) == 1 && (args[0] == "version" || args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintln(stdout, "sessioncheck", buildversion.String(""))
		return 0
	}
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "sessioncheck:", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	logf := func(format string, args ...any) { logger.Info(fmt.Sprintf(format, args...)) }

	// The local target's nodes run without TLS or tokens: nothing to send.
	var creds check.Credentials
	if o.target != "local" {
		if creds, err = check.LoadCredentials(o.auth); err != nil {
			fmt.Fprintln(stderr, "sessioncheck:", err)
			return 2
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	target, closeTarget, err := openTarget(ctx, o, creds, logger)
	if err != nil {
		fmt.Fprintln(stderr, "sessioncheck:", err)
		return 2
	}
	out := o.out
	if out == "" {
		out, _ = os.MkdirTemp("", "sessioncheck-")
	}
	rep, err := check.Run(ctx, check.Config{
		Target: target, Workload: o.workload, Duration: o.duration, Warmup: o.warmup,
		Faults:       check.FaultConfig{Kinds: splitList(o.faults), Interval: o.interval, Seed: o.seed},
		CheckTimeout: o.checkTimeout, StartTimeout: o.startTimeout, OutDir: out, Logf: logf,
		Credentials: creds, StreamReaders: o.streamReaders,
	})
	closeErr := closeTarget(err == nil && rep.Pass && !o.keep)
	if err != nil {
		fmt.Fprintln(stderr, "sessioncheck:", err)
		return 2
	}
	name := o.target
	if d, ok := target.(interface{ describe() string }); ok {
		name = d.describe() // the local target says how it partitions
	}
	rep.Target = name + ", " + rep.Target
	if b, err := json.MarshalIndent(rep, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(out, "report.json"), b, 0o644)
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		rep.WriteText(stdout)
	}
	if closeErr != nil {
		fmt.Fprintln(stderr, "sessioncheck: cleanup:", closeErr)
	}
	if !rep.Pass {
		fmt.Fprintf(stderr, "sessioncheck: FAIL; history and report in %s\n", out)
		return 1
	}
	if o.out == "" {
		os.RemoveAll(out)
	}
	return 0
}

// openTarget builds the target; the returned function releases it
// (removing what it created when clean is set).
func openTarget(ctx context.Context, o *options, creds check.Credentials, logger *slog.Logger) (check.Target, func(clean bool) error, error) {
	switch o.target {
	case "addrs":
		t, err := newStaticTarget(o.addrs, creds)
		return t, func(bool) error { return nil }, err
	case "compose":
		t, err := newComposeTarget(ctx, o.compose, creds)
		if err != nil {
			return nil, nil, err
		}
		return t, func(bool) error { return t.close() }, nil
	case "local":
		t, err := startLocal(ctx, o, logger)
		if err != nil {
			return nil, nil, err
		}
		return t, t.close, nil
	}
	return nil, nil, fmt.Errorf("unknown --target %q (local, compose or addrs)", o.target)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// explain re-checks one session's saved history and prints where it stops
// being linearizable.
func explain(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: sessioncheck explain SESSION.jsonl (from the violations directory of a failed run)")
		return 2
	}
	f, err := os.Open(args[0])
	if err != nil {
		fmt.Fprintln(stderr, "sessioncheck:", err)
		return 2
	}
	defer f.Close()
	ops, err := check.ReadJSONLines(f)
	if err != nil {
		fmt.Fprintln(stderr, "sessioncheck:", err)
		return 2
	}
	ok, err := check.Explain(stdout, ops, 5*time.Minute)
	switch {
	case err != nil:
		fmt.Fprintln(stderr, "sessioncheck:", err)
		return 2
	case !ok:
		return 1
	}
	return 0
}
