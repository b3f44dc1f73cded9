package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/internal/baseurl"

	"github.com/sessiond/sessiond/client"
)

// opKind is one kind of request the workload sends.
type opKind int

const (
	opAppend  opKind = iota // POST …/messages, one message with a unique id
	opGet                   // GET …/messages?limit=20: the first page, not the whole session
	opPut                   // PUT the session: a small top-level merge of fields
	opGetFull               // GET the whole session (every message)
	opState                 // GET …/state: the fields only
	numOps
)

var opNames = [numOps]string{"append", "get", "put", "getfull", "state"}

func (o opKind) String() string { return opNames[o] }

// isRead reports whether the op is a read: reads take ?consistency= and a 404
// from them (the session was not written yet) is an expected empty answer.
func (o opKind) isRead() bool { return o == opGet || o == opGetFull || o == opState }

// pageLimit is the page size of the get op, a typical "show recent history"
// read; getfull is there for whole-session reads.
const pageLimit = 20

// mix holds the relative weight of each op.
type mix struct {
	weights [numOps]int
	total   int
}

// parseMix parses "append=70,get=20,put=10". Ops that are not named get
// weight 0; at least one weight must be positive. Errors name the bad part
// so that a typo in a long benchmark script is found before the run.
func parseMix(s string) (mix, error) {
	var m mix
	if strings.TrimSpace(s) == "" {
		return m, errors.New("--mix is empty; want e.g. append=70,get=20,put=10")
	}
	seen := [numOps]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		name, weight, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return m, fmt.Errorf("--mix: %q is not op=weight", part)
		}
		op := opKind(-1)
		for i, n := range opNames {
			if n == name {
				op = opKind(i)
			}
		}
		if op < 0 {
			return m, fmt.Errorf("--mix: unknown op %q (ops: %s)", name, strings.Join(opNames[:], ", "))
		}
		if seen[op] {
			return m, fmt.Errorf("--mix: op %q given twice", name)
		}
		seen[op] = true
		w, err := strconv.Atoi(strings.TrimSpace(weight))
		if err != nil || w < 0 {
			return m, fmt.Errorf("--mix: weight of %q must be a non-negative integer, got %q", name, weight)
		}
		if w > 1_000_000 {
			return m, fmt.Errorf("--mix: weight of %q is over 1000000", name)
		}
		m.weights[op] = w
		m.total += w
	}
	if m.total == 0 {
		return m, errors.New("--mix: every weight is 0; nothing to send")
	}
	return m, nil
}

// String renders the mix the way parseMix reads it, weight-0 ops left out.
func (m mix) String() string {
	var parts []string
	for op, w := range m.weights {
		if w > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", opKind(op), w))
		}
	}
	return strings.Join(parts, ",")
}

// pick maps n, uniform in [0, total), to an op with probability weight/total.
func (m mix) pick(n int) opKind {
	for op, w := range m.weights {
		if n < w {
			return opKind(op)
		}
		n -= w
	}
	return numOps - 1 // unreachable for n < total
}

// normalizeAddrs turns the --addrs list into base URLs. Bad entries are
// rejected up front rather than counted as transport errors for a whole run.
func normalizeAddrs(s string) ([]string, error) {
	addrs, err := baseurl.ParseList(s)
	if err != nil {
		return nil, fmt.Errorf("--addrs: %w", err)
	}
	return addrs, nil
}

// sessionID names session n of this run; the prefix keeps runs apart.
func sessionID(prefix string, n int) string {
	return "bench-" + prefix + "-" + strconv.Itoa(n)
}

// buildCall builds one request. seq is the worker's request counter: with
// the run prefix and worker number it makes append's message id unique, so a
// retried append would be deduplicated by the server rather than stored twice.
func buildCall(cfg *config, op opKind, session, worker int, seq uint64, content string) client.Call {
	c := client.Call{Method: http.MethodGet, Path: "/api/chat/session/" + sessionID(cfg.prefix, session)}
	switch op {
	case opAppend:
		c.Method, c.Path = http.MethodPost, c.Path+"/messages"
		role := "user"
		if seq%2 == 1 {
			role = "assistant"
		}
		id := cfg.prefix + "-w" + strconv.Itoa(worker) + "-" + strconv.FormatUint(seq, 10)
		c.Body = fmt.Appendf(nil, `{"id":%q,"role":%q,"content":%q}`, id, role, content)
	case opPut:
		c.Method = http.MethodPut
		c.Body = fmt.Appendf(nil, `{"lastSearchCriteria":{"from":"BER","to":"LIS","dates":"05-03/05-07","passengers":%d},"step":%d}`, seq%4+1, seq)
	case opGet:
		c.Path += "/messages?limit=" + strconv.Itoa(pageLimit)
	case opState:
		c.Path += "/state"
	}
	if op.isRead() && cfg.consistency != "" {
		sep := "?"
		if strings.Contains(c.Path, "?") {
			sep = "&"
		}
		c.Path += sep + "consistency=" + cfg.consistency
	}
	return c
}

// outcome is what one request came to.
type outcome struct {
	status    int    // HTTP status; 0 on a transport error
	code      string // error code from {"error":{"code":…}} when status ≥ 400
	transport string // transport error kind, "" when a response was read
	forwarded bool   // the node asked proxied the request to the shard leader
	proto     string // the response's protocol, "HTTP/1.1" or "HTTP/2.0"; "" without one
	// retryAfter is the wait a 429 or 503 asked for with Retry-After.
	retryAfter time.Duration
}

// execute sends one request to base and reads the whole answer: latency
// includes the body, and a drained body lets the keep-alive connection be
// reused. With wantHTTP2 (--h2c) an answer that did not come over HTTP/2 is
// an error, protocol_mismatch, so a report can only claim HTTP/2 numbers
// that were.
func execute(c *client.Client, base string, req client.Call, wantHTTP2 bool) outcome {
	rep, err := c.Exchange(context.Background(), base, req)
	if terr, failed := client.TransportFailure(err); failed {
		return outcome{transport: classifyTransport(terr)}
	}
	var e *client.Error
	errors.As(err, &e)
	if wantHTTP2 && !strings.HasPrefix(rep.Proto, "HTTP/2") {
		return outcome{transport: "protocol_mismatch", proto: rep.Proto}
	}
	o := outcome{status: rep.Status, forwarded: rep.Header.Get("X-Sessiond-Forwarded-By") != "", proto: rep.Proto}
	if e != nil {
		o.code = errorCode(e)
		if e.RetryAfter > 0 && (rep.Status == http.StatusTooManyRequests || rep.Status == http.StatusServiceUnavailable) {
			o.retryAfter = e.RetryAfter
		}
	}
	return o
}

// errorCode is the code of sessiond's error model, or "(none)" when the
// body was not that JSON (a proxy's error page, say).
func errorCode(e *client.Error) string {
	if strings.HasPrefix(string(e.Code), "http_") {
		return "(none)"
	}
	return string(e.Code)
}

// classifyTransport names the kind of a transport error, so that a report
// tells "server too slow" (timeout) from "server gone" (refused) and "server
// dropped the connection" (reset, eof).
func classifyTransport(err error) string {
	var ne net.Error
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection_reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken_pipe"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &dns):
		return "dns"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "other"
}
