package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/baseurl"
)

// setup is every command's preamble: parse the command line, check that
// the named arguments are not empty, build the client (a malformed --addr
// is a usage error).
func (a *app) setup(fs *flag.FlagSet, args []string, minArgs, maxArgs int, names ...string) ([]string, *client.Client, error) {
	pos, err := a.parse(fs, args, minArgs, maxArgs)
	if err != nil {
		return nil, nil, err
	}
	for i, n := range names {
		if i < len(pos) && strings.TrimSpace(pos[i]) == "" {
			return nil, nil, usagef(fs.Name(), "%s must not be empty", n)
		}
	}
	c, err := a.newClient()
	if err != nil {
		return nil, nil, err
	}
	return pos, c, nil
}

func cmdOwner(a *app, fs *flag.FlagSet, args []string) error {
	pos, c, err := a.setup(fs, args, 1, 1, "ID")
	if err != nil {
		return err
	}
	o, err := c.Owner(context.Background(), pos[0])
	if err != nil {
		return err
	}
	if a.output == "json" {
		return writeJSON(a.stdout, o)
	}
	fmt.Fprintf(a.stdout, "session   %s\nshard     %d\nleader    %s\nreplicas  %s\n",
		o.Session, o.Shard, dash(o.Leader), dash(strings.Join(o.Replicas, ",")))
	return nil
}

// readSetup is the preamble of commands that read session ID: setup, plus
// --consistency (declared before, checked after the parse).
func (a *app) readSetup(fs *flag.FlagSet, args []string) (string, *client.Client, []client.ReadOption, error) {
	v := fs.String("consistency", "", "linearizable (the server's default), leader or stale (any replica answers)")
	pos, c, err := a.setup(fs, args, 1, 1, "ID")
	if err != nil {
		return "", nil, nil, err
	}
	switch *v {
	case "":
		return pos[0], c, nil, nil
	case "linearizable", "leader", "stale":
		return pos[0], c, []client.ReadOption{client.WithConsistency(client.Consistency(*v))}, nil
	}
	return "", nil, nil, usagef(fs.Name(), "--consistency must be linearizable, leader or stale, not %q", *v)
}

func cmdGet(a *app, fs *flag.FlagSet, args []string) error {
	id, c, opts, err := a.readSetup(fs, args)
	if err != nil {
		return err
	}
	s, err := c.Get(context.Background(), id, opts...)
	if err != nil {
		return err
	}
	return a.printBody(s.Raw)
}

func cmdAppend(a *app, fs *flag.FlagSet, args []string) error {
	id := fs.String("id", "", "message id; appending the same id again returns the stored message instead of a duplicate")
	pos, c, err := a.setup(fs, args, 3, 3, "ID", "ROLE")
	if err != nil {
		return err
	}
	res, err := c.Append(context.Background(), pos[0], []client.Message{{ID: *id, Role: pos[1], Content: pos[2]}})
	if err != nil {
		return err
	}
	if a.output == "json" {
		return writeJSON(a.stdout, res)
	}
	if len(res.Messages) == 0 {
		return fmt.Errorf("sessiond stored no message")
	}
	what := "stored"
	if !res.Created {
		what = "already stored (same id), unchanged"
	}
	m := res.Messages[0]
	fmt.Fprintf(a.stdout, "%s: message seq %d %s\n  id       %s\n  role     %s\n  content  %s\nversion %d\n",
		pos[0], m.Seq, what, m.ID, m.Role, m.Content, res.Version)
	return nil
}

// conditionFlags declares --if-version and, for writes that create,
// --if-absent; the returned function gives the write options.
func conditionFlags(fs *flag.FlagSet, absent bool) func() ([]client.WriteOption, error) {
	ver := fs.Uint64("if-version", 0, "apply only while the session's version (its ETag) is this; 412 version_mismatch otherwise")
	var ifAbsent *bool
	if absent {
		ifAbsent = fs.Bool("if-absent", false, "apply only if the session does not exist yet")
	}
	return func() ([]client.WriteOption, error) {
		switch {
		case ifAbsent != nil && *ifAbsent && *ver != 0:
			return nil, usagef(fs.Name(), "--if-version and --if-absent exclude each other")
		case ifAbsent != nil && *ifAbsent:
			return []client.WriteOption{client.IfAbsent()}, nil
		case *ver != 0:
			return []client.WriteOption{client.IfVersion(*ver)}, nil
		}
		return nil, nil
	}
}

// fieldsDoc reads the JSON object argument of put and patch ("-" reads
// stdin) and checks it here, so a typo costs a usage message, not a round
// trip.
func (a *app) fieldsDoc(cmd, arg string) (json.RawMessage, error) {
	doc := []byte(arg)
	if arg == "-" {
		var err error
		if doc, err = io.ReadAll(a.stdin); err != nil {
			return nil, fmt.Errorf("reading stdin: %v", err)
		}
	}
	var fields map[string]json.RawMessage
	if !json.Valid(doc) {
		return nil, usagef(cmd, "JSON is not valid JSON: %v", json.Unmarshal(doc, new(any)))
	}
	if json.Unmarshal(doc, &fields) != nil || fields == nil {
		return nil, usagef(cmd, "JSON must be an object of fields, e.g. '{\"step\":\"confirm\"}', not %s", jsonKind(doc))
	}
	return doc, nil
}

func cmdPut(a *app, fs *flag.FlagSet, args []string) error {
	return a.fieldsWrite(fs, args, true, (*client.Client).Update)
}

func cmdPatch(a *app, fs *flag.FlagSet, args []string) error {
	return a.fieldsWrite(fs, args, false, (*client.Client).Patch)
}

type fieldsWriter func(*client.Client, context.Context, string, any, ...client.WriteOption) (*client.Session, error)

func (a *app) fieldsWrite(fs *flag.FlagSet, args []string, absent bool, write fieldsWriter) error {
	cond := conditionFlags(fs, absent)
	pos, c, err := a.setup(fs, args, 2, 2, "ID")
	if err != nil {
		return err
	}
	opts, err := cond()
	if err != nil {
		return err
	}
	doc, err := a.fieldsDoc(fs.Name(), pos[1])
	if err != nil {
		return err
	}
	s, err := write(c, context.Background(), pos[0], doc, opts...)
	if err != nil {
		return err
	}
	return a.printBody(s.Raw)
}

func cmdDelete(a *app, fs *flag.FlagSet, args []string) error {
	cond := conditionFlags(fs, false)
	field := fs.String("field", "", "delete only this field of the session")
	pos, c, err := a.setup(fs, args, 1, 1, "ID")
	if err != nil {
		return err
	}
	opts, err := cond()
	if err != nil {
		return err
	}
	ctx, what := context.Background(), pos[0]
	if *field != "" {
		err, what = c.DeleteField(ctx, pos[0], *field, opts...), fmt.Sprintf("%s: field %s", pos[0], *field)
	} else {
		err = c.Delete(ctx, pos[0], opts...)
	}
	if err != nil {
		return err
	}
	if a.output == "json" {
		return writeJSON(a.stdout, map[string]any{"session": pos[0], "field": *field, "deleted": true})
	}
	fmt.Fprintf(a.stdout, "%s deleted\n", what)
	return nil
}

// jsonKind names what a valid JSON document that is not an object is.
func jsonKind(doc []byte) string {
	switch bytes.TrimSpace(doc)[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

func cmdTransfer(a *app, fs *flag.FlagSet, args []string) error {
	pos, c, err := a.setup(fs, args, 1, 2, "SHARD", "NODE")
	if err != nil {
		return err
	}
	n, err := strconv.ParseUint(pos[0], 10, 32)
	if err != nil {
		return usagef("transfer", "SHARD must be a shard number, not %q", pos[0])
	}
	to := ""
	if len(pos) == 2 {
		to = pos[1]
	}
	leader, err := c.TransferLeadership(context.Background(), uint32(n), to)
	if err != nil {
		return err
	}
	if a.output == "json" {
		return writeJSON(a.stdout, map[string]any{"shard": n, "leader": leader})
	}
	// The old leader answers as soon as it has stepped down, often before
	// it has heard from the new one, so an empty leader is normal.
	want := "the most up-to-date replica"
	if to != "" {
		want = to
	}
	switch {
	case leader == "":
		fmt.Fprintf(a.stdout, "shard %d: leadership handed to %s (new leader not confirmed yet)\n", n, want)
	case to != "" && leader != to:
		fmt.Fprintf(a.stdout, "shard %d: leader %s (asked for %s)\n", n, leader, to)
	default:
		fmt.Fprintf(a.stdout, "shard %d: leader %s\n", n, leader)
	}
	return nil
}

func cmdDrain(a *app, fs *flag.FlagSet, args []string) error {
	wait := fs.Bool("wait", false, "wait until the node has drained, printing progress every second")
	waitTimeout := fs.Duration("wait-timeout", 5*time.Minute, "give up waiting after this long (the drain itself goes on)")
	pos, c, err := a.setup(fs, args, 1, 1, "NODE")
	if err != nil {
		return err
	}
	if *waitTimeout <= 0 {
		return usagef("drain", "--wait-timeout must be positive")
	}
	node, ctx := pos[0], context.Background()
	// The drained node exits when done, so learn the other members first:
	// they are how the drain is watched.
	var before *clusterView
	if *wait {
		if before, err = c.Cluster(ctx); err != nil {
			return err
		}
	}
	if err := c.Drain(ctx, node); err != nil {
		return err
	}
	if !*wait {
		if a.output == "json" {
			return writeJSON(a.stdout, map[string]any{"node": node, "draining": true})
		}
		fmt.Fprintf(a.stdout, "%s: drain requested; it moves its replicas and leadership away, then exits\n", node)
		return nil
	}
	watch := pollAddrs(c.Endpoints(), before.Members, node)
	if len(watch) == 0 {
		return fmt.Errorf("%s: drain requested, but no other member is known to watch it through", node)
	}
	wc, err := c.WithEndpoints(watch...)
	if err != nil {
		return err
	}
	return a.waitDrained(ctx, wc.WithTimeout(min(a.timeout, fanoutTimeout)), node, *waitTimeout)
}

// pollAddrs lists where to watch a drain: the user's addresses, then every
// live member, leaving out the draining node itself.
func pollAddrs(given []string, members []memberStatus, node string) []string {
	skip := map[string]bool{}
	var cands []string
	for _, m := range members {
		u, err := baseurl.Parse(m.HTTPAddr)
		if err != nil || m.HTTPAddr == "" {
			continue
		}
		if m.ID == node {
			skip[u] = true
		} else if m.State == "alive" || m.State == "suspect" {
			cands = append(cands, u)
		}
	}
	var out []string
	for _, u := range append(append([]string{}, given...), cands...) {
		if !skip[u] {
			skip[u] = true
			out = append(out, u)
		}
	}
	return out
}

// waitDrained polls until node has left or holds nothing, overwriting one
// progress line on a terminal and printing plain lines otherwise.
func (a *app) waitDrained(ctx context.Context, c *client.Client, node string, timeout time.Duration) error {
	progress := a.stdout
	if a.output == "json" {
		progress = a.stderr // stdout carries only the JSON result
	}
	deadline := time.Now().Add(timeout)
	for {
		var line string
		var final *memberStatus
		if v, err := c.Cluster(ctx); err != nil {
			line = fmt.Sprintf("%s: no member answered: %s", node, errorReason(err))
		} else {
			final = &memberStatus{ID: node, State: "left"} // no longer listed
			for _, m := range v.Members {
				if m.ID == node {
					m := m
					final = &m
				}
			}
			phase := final.State
			if final.Draining && final.State == "alive" {
				phase = "draining"
			}
			line = fmt.Sprintf("%s: %s, %d %s, %d leading", node, phase, final.Replicas, plural(final.Replicas, "replica"), final.Leading)
			gone := final.State == "left" || final.State == "dead"
			if !gone && (final.Replicas > 0 || final.Leading > 0) {
				final = nil
			}
		}
		if a.tty {
			fmt.Fprintf(progress, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(progress, line)
		}
		if final != nil || time.Now().After(deadline) {
			if a.tty {
				fmt.Fprintln(progress)
			}
			if final == nil {
				return fmt.Errorf("%s did not drain within %v (last: %s); the drain goes on", node, timeout, line)
			}
			if a.output == "json" {
				return writeJSON(a.stdout, map[string]any{"node": node, "drained": true, "member": final})
			}
			fmt.Fprintf(a.stdout, "%s drained\n", node)
			return nil
		}
		time.Sleep(a.pollEvery)
	}
}
