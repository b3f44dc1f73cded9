package main

import (
	"errors"
	"strings"
	"time"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/baseurl"
)

// attempts is how often sessionctl sends a request sessiond answered "not
// applied, retry" (or an append whose answer was lost): enough to ride out
// a leader election, few enough to fail fast at a terminal.
const attempts = 3

// newClient builds the client every command talks through; a malformed
// --addr or credential is a usage error.
func (a *app) newClient() (*client.Client, error) {
	addrs, err := baseurl.ParseList(a.addr)
	if errors.Is(err, baseurl.ErrNone) {
		return nil, usagef("", "no sessiond address given (set --addr or SESSIOND_ADDR)")
	}
	if err != nil {
		return nil, usagef("", "invalid address %v", err)
	}
	tlsConf, err := a.creds.TLSConfig()
	if err != nil {
		return nil, usagef("", "%v", err)
	}
	return client.New(client.Config{Endpoints: addrs, Token: a.creds.Token, TLS: tlsConf,
		Timeout: a.timeout, MaxAttempts: attempts, Backoff: 200 * time.Millisecond})
}

// errorText is how sessionctl prints a failure: an unreachable cluster
// says how to point elsewhere, every other error as the client words it.
func errorText(err error) string {
	var e *client.Error
	if errors.As(err, &e) && e.Code == client.CodeUnreachable {
		return e.Message + " (set --addr or SESSIOND_ADDR)"
	}
	return err.Error()
}

// errorReason is a member's failure in a fan-out: the reason only, since
// the --addr hint is wrong for a member.
func errorReason(err error) string {
	var e *client.Error
	if errors.As(err, &e) && e.Code == client.CodeUnreachable {
		if _, reason, ok := strings.Cut(e.Message, ": "); ok && strings.HasPrefix(e.Message, "cannot reach") {
			return reason
		}
		return e.Message
	}
	return err.Error()
}
