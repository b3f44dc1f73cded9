package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/internal/baseurl"
)

// sessionPath is the API path of session id; ids are validated by the
// server, escaping only keeps a bad one from changing the route.
func sessionPath(id string) string { return "/api/chat/session/" + url.PathEscape(id) }

// setup is every command's preamble: parse the command line, check that
// the named arguments are not empty, build the client (a malformed --addr
// is a usage error).
func (a *app) setup(fs *flag.FlagSet, args []string, minArgs, maxArgs int, names ...string) ([]string, *client, error) {
	pos, err := a.parse(fs, args, minArgs, maxArgs)
	if err != nil {
		return nil, nil, err
	}
	for i, n := range names {
		if i < len(pos) && strings.TrimSpace(pos[i]) == "" {
			return nil, nil, usagef(fs.Name(), "%s must not be empty", n)
		}
	}
	c, err := newClient(a.addr, a.timeout, &a.creds)
	if err != nil {
		return nil, nil, usagef("", "%v", err)
	}
	return pos, c, nil
}

func cmdOwner(a *app, fs *flag.FlagSet, args []string) error {
	pos, c, err := a.setup(fs, args, 1, 1, "ID")
	if err != nil {
		return err
	}
	var o ownerResponse
	resp, err := c.getJSON(context.Background(), "/v1/sessions/"+url.PathEscape(pos[0])+"/owner", &o)
	if err != nil {
		return err
	}
	if a.output == "json" {
		return a.printBody(resp.body)
	}
	fmt.Fprintf(a.stdout, "session   %s\nshard     %d\nleader    %s\nreplicas  %s\n",
		o.Session, o.Shard, dash(o.Leader), dash(strings.Join(o.Replicas, ",")))
	return nil
}

func cmdGet(a *app, fs *flag.FlagSet, args []string) error {
	consistency := fs.String("consistency", "", "linearizable (the server's default), leader or stale (any replica answers)")
	pos, c, err := a.setup(fs, args, 1, 1, "ID")
	if err != nil {
		return err
	}
	path := sessionPath(pos[0])
	switch *consistency {
	case "":
	case "linearizable", "leader", "stale":
		path += "?consistency=" + *consistency
	default:
		return usagef("get", "--consistency must be linearizable, leader or stale, not %q", *consistency)
	}
	resp, err := c.do(context.Background(), http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	return a.printBody(resp.body)
}

func cmdAppend(a *app, fs *flag.FlagSet, args []string) error {
	id := fs.String("id", "", "message id; appending the same id again returns the stored message instead of a duplicate")
	pos, c, err := a.setup(fs, args, 3, 3, "ID", "ROLE")
	if err != nil {
		return err
	}
	msg := map[string]string{"role": pos[1], "content": pos[2]}
	if *id != "" {
		msg["id"] = *id
	}
	body, _ := json.Marshal(msg)
	resp, err := c.do(context.Background(), http.MethodPost, sessionPath(pos[0])+"/messages", body)
	if err != nil {
		return err
	}
	if a.output == "json" {
		return a.printBody(resp.body)
	}
	var ar appendResponse
	if err := json.Unmarshal(resp.body, &ar); err != nil || len(ar.Messages) == 0 {
		return fmt.Errorf("unexpected answer from %s: %s", resp.addr, bytes.TrimSpace(resp.body))
	}
	what := "stored"
	if resp.status == http.StatusOK {
		what = "already stored (same id), unchanged"
	}
	m := ar.Messages[0]
	fmt.Fprintf(a.stdout, "%s: message seq %d %s\n  id       %s\n  role     %s\n  content  %s\nversion %d\n",
		pos[0], m.Seq, what, m.ID, m.Role, m.Content, ar.Version)
	return nil
}

func cmdPut(a *app, fs *flag.FlagSet, args []string) error {
	pos, c, err := a.setup(fs, args, 2, 2, "ID")
	if err != nil {
		return err
	}
	doc := []byte(pos[1])
	if pos[1] == "-" {
		if doc, err = io.ReadAll(a.stdin); err != nil {
			return fmt.Errorf("reading stdin: %v", err)
		}
	}
	// Checked here so a typo costs a usage message, not a round trip.
	var fields map[string]json.RawMessage
	if !json.Valid(doc) {
		return usagef("put", "JSON is not valid JSON: %v", json.Unmarshal(doc, new(any)))
	}
	if json.Unmarshal(doc, &fields) != nil || fields == nil {
		return usagef("put", "JSON must be an object of fields, e.g. '{\"step\":\"confirm\"}', not %s", jsonKind(doc))
	}
	resp, err := c.do(context.Background(), http.MethodPut, sessionPath(pos[0]), doc)
	if err != nil {
		return err
	}
	return a.printBody(resp.body)
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
	path := fmt.Sprintf("/v1/shards/%d/transfer-leadership", n)
	if len(pos) == 2 {
		path += "?to=" + url.QueryEscape(pos[1])
	}
	resp, err := c.do(context.Background(), http.MethodPost, path, nil)
	if err != nil {
		return err
	}
	if a.output == "json" {
		return a.printBody(resp.body)
	}
	var tr struct {
		Shard  uint32 `json:"shard"`
		Leader string `json:"leader"`
	}
	_ = json.Unmarshal(resp.body, &tr)
	// The old leader answers as soon as it has stepped down, often before
	// it has heard from the new one, so an empty leader is normal.
	to := "the most up-to-date replica"
	if len(pos) == 2 {
		to = pos[1]
	}
	switch {
	case tr.Leader == "":
		fmt.Fprintf(a.stdout, "shard %d: leadership handed to %s (new leader not confirmed yet)\n", n, to)
	case len(pos) == 2 && tr.Leader != pos[1]:
		fmt.Fprintf(a.stdout, "shard %d: leader %s (asked for %s)\n", n, tr.Leader, pos[1])
	default:
		fmt.Fprintf(a.stdout, "shard %d: leader %s\n", n, tr.Leader)
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
	var before clusterView
	if *wait {
		if _, err := c.getJSON(ctx, "/v1/cluster", &before); err != nil {
			return err
		}
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(node)+"/drain", nil)
	if err != nil {
		return err
	}
	if !*wait {
		if a.output == "json" {
			return a.printBody(resp.body)
		}
		fmt.Fprintf(a.stdout, "%s: drain requested; it moves its replicas and leadership away, then exits\n", node)
		return nil
	}
	watch := pollAddrs(c.addrs, before.Members, node)
	if len(watch) == 0 {
		return fmt.Errorf("%s: drain requested, but no other member is known to watch it through", node)
	}
	return a.waitDrained(ctx, c.with(min(a.timeout, fanoutTimeout), watch...), node, *waitTimeout)
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
func (a *app) waitDrained(ctx context.Context, c *client, node string, timeout time.Duration) error {
	progress := a.stdout
	if a.output == "json" {
		progress = a.stderr // stdout carries only the JSON result
	}
	deadline := time.Now().Add(timeout)
	for {
		var v clusterView
		var line string
		var final *memberStatus
		if _, err := c.getJSON(ctx, "/v1/cluster", &v); err != nil {
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
