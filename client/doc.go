// Package client is the Go client of sessiond, the Raft-replicated chat
// session store. It speaks sessiond's public HTTP API, so it needs nothing
// but the nodes' addresses:
//
//	c, err := client.New(client.Config{Endpoints: []string{"10.0.0.1:8080", "10.0.0.2:8080"}})
//	res, err := c.Append(ctx, "demo-1", []client.Message{{ID: "m1", Role: "user", Content: "Hi"}})
//	s, err := c.Get(ctx, "demo-1")
//
// # Sessions
//
// A session holds ordered messages (Append, Messages) and JSON fields
// (Update merges top-level fields, Patch applies a JSON merge patch,
// SetField, DeleteField, Field, State). Get returns the whole session,
// Delete removes it, Sessions pages through every session of the cluster,
// Watch follows a session's change stream. Every write can be made
// conditional on the session's version with IfVersion or IfAbsent.
//
// Operators' calls are here too: Cluster, Owner, Drain,
// TransferLeadership, and Backup and Restore, which stream a whole
// cluster's archive (see the backup package) out of one cluster and into a
// new, empty one.
//
// # Errors
//
// Every error sessiond answers is an *Error with its HTTP status and a
// stable Code; compare with errors.Is and the Err… values:
//
//	if errors.Is(err, client.ErrSessionNotFound) { … }
//
// The client reports two conditions of its own in the same terms:
// ErrUnreachable when no endpoint could be reached, and ErrOutcomeUnknown
// when a write that is not safe to repeat failed after it was sent.
//
// # Retries
//
// A request is sent again only when that cannot apply it twice:
//
//   - reads, after any failure;
//   - any request that sessiond answered with a code that means "not
//     applied" (no_leader, overloaded, not_ready, shutting_down,
//     shard_unavailable, timeout, not_caught_up, rate_limited), after the
//     Retry-After it gives;
//   - appends and deletes also after outcome_unknown or a connection that
//     broke after sending: an append carries the same message ids on
//     every attempt (messages without an id are named by an
//     Idempotency-Key, made up when none is given), so sessiond stores
//     each message once;
//   - PUT and PATCH (Update, Patch, SetField, …) never after
//     outcome_unknown: the error is returned, and the caller re-reads the
//     session or retries with IfVersion.
//
// Config.MaxAttempts bounds the attempts; each attempt tries the endpoints
// in turn, starting with the one that answered last, until one is reached.
//
// # Routing
//
// Any node serves any request. With Config.RouteToLeader the client sends
// session requests straight to the leader of the session's shard, learnt
// from GET /v1/sessions/{id}/owner and kept in a cache that follows 307
// redirects and forgets a leader that fails.
//
// # Credentials
//
// Config.Token is sent as a bearer token; Config.TLS configures https://
// endpoints (the cluster CA and an optional client certificate).
package client
