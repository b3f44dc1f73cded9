package check

// The HTTP side of the workload: one request, and what its answer says about
// whether a write took effect.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	api "github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/clientauth"
)

// notApplied are the 503 codes sessiond answers only when the command was
// never proposed: the write did not happen and may be retried anywhere.
// Every other 503 (outcome_unknown, timeout, …) leaves the outcome open.
var notApplied = map[string]bool{
	"no_leader": true, "not_ready": true, "overloaded": true,
	"shutting_down": true, "shard_unavailable": true,
}

// reply is one HTTP exchange.
type reply struct {
	status int
	code   string // error.code of a JSON error body
	body   []byte
	etag   uint64
	err    error
}

// outcome classifies a reply to a write or a read.
func (r reply) outcome() Status {
	switch {
	case r.err != nil:
		if neverSent(r.err) {
			return StatusFailed
		}
		return StatusUnknown
	case r.status >= 200 && r.status < 300:
		return StatusOK
	case r.status == http.StatusNotFound:
		return StatusNotFound
	case r.status == http.StatusPreconditionFailed:
		return StatusConflict
	case r.status == http.StatusServiceUnavailable && notApplied[r.code]:
		return StatusFailed
	case r.status >= 500:
		return StatusUnknown
	}
	return StatusFailed // other 4xx: the request was refused; counted as unexpected
}

// unexpected reports a 4xx the workload never provokes on purpose (a 400,
// 409 or 413): a bug in sessiond or in the checker.
func (r reply) unexpected() bool {
	return r.err == nil && r.status >= 400 && r.status < 500 &&
		r.status != http.StatusNotFound && r.status != http.StatusPreconditionFailed
}

// neverSent reports a transport error that happened before the request
// could reach the server: the connection was refused or never opened.
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

func (r reply) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	if r.code != "" {
		return strconv.Itoa(r.status) + " " + r.code
	}
	return strconv.Itoa(r.status)
}

// Credentials are what every request of the checker presents to the
// nodes. The zero value presents nothing, for nodes without TLS or tokens.
type Credentials struct {
	TLS   *tls.Config // for https:// nodes; nil trusts the system's roots
	Token string      // bearer token; "" sends none
}

// LoadCredentials reads the files o names.
func LoadCredentials(o clientauth.Options) (Credentials, error) {
	conf, err := o.TLSConfig()
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{TLS: conf, Token: o.Token}, nil
}

// newHTTPClient is the client every workload client shares; each request
// names its node. Short timeouts: a request to a paused or cut-off node
// must give up quickly so the operation can be resolved or retried
// elsewhere.
func newHTTPClient(timeout time.Duration, creds Credentials) *api.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: timeout / 2}).DialContext,
		TLSHandshakeTimeout: timeout / 2,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	if creds.TLS != nil {
		tr.TLSClientConfig = creds.TLS.Clone()
	}
	c, err := api.New(api.Config{Transport: tr, Token: creds.Token, Timeout: timeout, MaxAttempts: 1})
	if err != nil {
		panic(err) // no endpoint to parse: cannot fail
	}
	return c
}

// do sends one request to the node at base, once: the checker decides
// itself what an answer means and whether to try again.
func do(ctx context.Context, c *api.Client, base string, call api.Call) reply {
	call.KeepBody = true
	rep, err := c.Exchange(ctx, base, call)
	if terr, failed := api.TransportFailure(err); failed {
		return reply{err: terr} // the transport's own error, which neverSent reads
	}
	r := reply{status: rep.Status, body: rep.Body}
	if etag := strings.Trim(rep.Header.Get("ETag"), `"`); etag != "" {
		r.etag, _ = strconv.ParseUint(etag, 10, 64)
	}
	var e *api.Error
	if errors.As(err, &e) && !strings.HasPrefix(string(e.Code), "http_") {
		r.code = string(e.Code)
	}
	return r
}

// sessionDoc is a whole-session read.
type sessionDoc struct {
	Version  uint64
	IDs      []string
	Seqs     []uint64
	Fields   map[string]string
	Messages []json.RawMessage
	// Msgs are the messages in full, for the change-stream check.
	Msgs []wireMessage
}

// fixedMembers are the members of a session document that are not fields.
var fixedMembers = map[string]bool{
	"id": true, "createdAt": true, "updatedAt": true, "lastAccessedAt": true, "version": true, "messages": true,
}

type wireMessage struct {
	Seq     uint64 `json:"seq"`
	ID      string `json:"id"`
	Role    string `json:"role"`
	Content string `json:"content"`
}

func parseSession(b []byte) (*sessionDoc, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	d := &sessionDoc{Fields: map[string]string{}}
	if err := json.Unmarshal(raw["version"], &d.Version); err != nil {
		return nil, errors.New("session without a version")
	}
	var msgs []wireMessage
	if err := json.Unmarshal(raw["messages"], &msgs); err != nil {
		return nil, errors.New("session without messages")
	}
	d.Msgs = msgs
	for _, m := range msgs {
		d.IDs = append(d.IDs, m.ID)
		d.Seqs = append(d.Seqs, m.Seq)
	}
	for k, v := range raw {
		if fixedMembers[k] {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			s = string(v) // the workload writes strings; show anything else as is
		}
		d.Fields[k] = s
	}
	return d, nil
}

// output is the model's view of a session read.
func (d *sessionDoc) output() Output {
	return Output{Status: StatusOK, Version: d.Version, Count: len(d.IDs), Hash: DigestIDs(d.IDs), Fields: CanonicalFields(d.Fields)}
}
