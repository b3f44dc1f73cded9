package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/shard"
)

// errorCase is an error from below the HTTP layer and the answer a client
// must get for it: status, code and Retry-After ("" for none).
type errorCase struct {
	err        error
	status     int
	code       string
	retryAfter string
}

func (k errorCase) name() string { return fmt.Sprintf("%T %v", k.err, k.err) }

// want checks r against the case.
func (k errorCase) want(t *testing.T, r *response) {
	t.Helper()
	wantError(t, r, k.status, k.code)
	if got := r.Header.Get("Retry-After"); got != k.retryAfter {
		t.Errorf("%s: Retry-After %q, want %q", r, got, k.retryAfter)
	}
}

// Every error a shard operation can end with has its status and stable
// code, on writes and reads alike. The codes keep "not applied, retry"
// (503 with Retry-After) apart from "may have been applied"
// (outcome_unknown); the quota is 507, and an error the layer does not
// know is a 500 internal that says nothing more.
func TestEveryStoreErrorHasItsStatusAndCode(t *testing.T) {
	const unavailable = http.StatusServiceUnavailable
	for _, k := range []errorCase{
		{&shard.NotLeaderError{Shard: 1, LeaderID: "n2"}, unavailable, httpapi.CodeNoLeader, "1"},
		{&shard.NotLeaderError{Shard: 1}, unavailable, httpapi.CodeNoLeader, "1"},
		{fmt.Errorf("proposing: %w", &shard.NotLeaderError{Shard: 1, LeaderID: "n2"}), unavailable, httpapi.CodeNoLeader, "1"},
		{shard.ErrNoLeader, unavailable, httpapi.CodeNoLeader, "1"},
		{shard.ErrNotEnqueued, unavailable, httpapi.CodeOverloaded, "1"},
		{fmt.Errorf("%w: the leader answered nonsense", shard.ErrNotEnqueued), unavailable, httpapi.CodeOverloaded, "1"},
		{shard.ErrNotReady, unavailable, httpapi.CodeNotReady, "1"},
		{shard.ErrShutdown, unavailable, httpapi.CodeShuttingDown, "1"},
		{fmt.Errorf("%w: forwarding to n2: EOF", shard.ErrOutcomeUnknown), unavailable, httpapi.CodeOutcomeUnknown, "1"},
		{&shard.NotHostedError{Shard: 1}, unavailable, httpapi.CodeShardUnavailable, "1"},
		{context.DeadlineExceeded, unavailable, httpapi.CodeTimeout, "1"},
		{context.Canceled, unavailable, httpapi.CodeTimeout, "1"},
		{&cluster.NoSpaceError{Shard: 1, Node: "n2"}, http.StatusInsufficientStorage, httpapi.CodeInsufficientSpace, ""},
		{errors.New("disk on fire"), http.StatusInternalServerError, httpapi.CodeInternal, ""},
	} {
		t.Run(k.name(), func(t *testing.T) {
			st := &failingStore{fakeStore: newFakeStore("a", testShardCount), err: k.err}
			a := newPeer(t).serve(t, st, nil)
			k.want(t, call(t, http.MethodPost, a.url+sessionPath("s1", "/messages"), appendBody("m1")))
			k.want(t, call(t, http.MethodGet, a.url+sessionPath("s1"), ""))
		})
	}
}

// Every unsuccessful result of the state machine has its status and code,
// and a result that names the session carries its version as the ETag.
func TestEveryUnsuccessfulResultHasItsStatusAndCode(t *testing.T) {
	f := fsm.New(fsm.DefaultLimits)
	sess := f.ApplyCommand(1, &fsm.Command{Op: fsm.OpMergeFields, Session: "s1",
		Fields: map[string]json.RawMessage{"step": json.RawMessage(`"search"`)}}).Session
	for _, k := range []struct {
		res    fsm.Result
		status int
		code   string
		etag   string
	}{
		{fsm.Result{Status: fsm.StatusVersionMismatch, Version: 7, Session: sess}, http.StatusPreconditionFailed, httpapi.CodeVersionMismatch, `"7"`},
		{fsm.Result{Status: fsm.StatusVersionMismatch}, http.StatusPreconditionFailed, httpapi.CodeVersionMismatch, ""},
		{fsm.Result{Status: fsm.StatusIDConflict, Version: 3, Session: sess, Detail: "message m1 differs"}, http.StatusConflict, httpapi.CodeIDConflict, `"3"`},
		{fsm.Result{Status: fsm.StatusNotFound, Version: 3, Session: sess, Detail: "no field x"}, http.StatusNotFound, httpapi.CodeFieldNotFound, `"3"`},
		{fsm.Result{Status: fsm.StatusNotFound, Detail: "no session s1"}, http.StatusNotFound, httpapi.CodeSessionNotFound, ""},
		{fsm.Result{Status: fsm.StatusTooLarge, Version: 3, Session: sess, Detail: "over the limit"}, http.StatusRequestEntityTooLarge, httpapi.CodeSessionTooLarge, `"3"`},
		{fsm.Result{Status: fsm.StatusInvalid, Detail: "bad patch"}, http.StatusBadRequest, httpapi.CodeInvalidFields, ""},
	} {
		t.Run(fmt.Sprintf("%v session=%t", k.res.Status, k.res.Session != nil), func(t *testing.T) {
			st := &failingStore{fakeStore: newFakeStore("a", testShardCount), res: &k.res}
			a := newPeer(t).serve(t, st, nil)
			r := call(t, http.MethodPut, a.url+sessionPath("s1"), `{"step":"done"}`)
			wantError(t, r, k.status, k.code)
			if got := r.Header.Get("ETag"); got != k.etag {
				t.Errorf("%s: ETag %q, want %q", r, got, k.etag)
			}
		})
	}
}

// Every error of the replica-move routes has its status and code; shard
// errors there map as on the session routes.
func TestEveryReplicaMoveErrorHasItsStatusAndCode(t *testing.T) {
	for _, k := range []errorCase{
		{cluster.ErrBusy, http.StatusTooManyRequests, httpapi.CodeBusy, "1"},
		{cluster.ErrStillMember, http.StatusConflict, httpapi.CodeStillMember, ""},
		{cluster.ErrNotFormed, http.StatusServiceUnavailable, httpapi.CodeNotFormed, "1"},
		{shard.ErrNoLeader, http.StatusServiceUnavailable, httpapi.CodeNoLeader, "1"},
		{shard.ErrShutdown, http.StatusServiceUnavailable, httpapi.CodeShuttingDown, "1"},
		{errors.New("disk on fire"), http.StatusInternalServerError, httpapi.CodeInternal, ""},
	} {
		t.Run(k.name(), func(t *testing.T) {
			a := newPeer(t).serve(t, newFakeStore("a", testShardCount), nil,
				func(cfg *httpapi.Config) { cfg.Replicas = failingReplicas{k.err} })
			k.want(t, call(t, http.MethodDelete, a.url+"/internal/v1/shards/1/replica", ""))
			k.want(t, call(t, http.MethodPost, a.url+"/internal/v1/shards/1/replica", ""))
		})
	}
}

// Every way a leadership transfer can fail has its status and code.
func TestEveryLeadershipTransferErrorHasItsStatusAndCode(t *testing.T) {
	for _, k := range []errorCase{
		{cluster.ErrNoOtherVoter, http.StatusConflict, httpapi.CodeNoOtherReplica, ""},
		{&shard.NotLeaderError{Shard: 1, LeaderID: "n2"}, http.StatusServiceUnavailable, httpapi.CodeNoLeader, "1"},
		{shard.ErrShutdown, http.StatusServiceUnavailable, httpapi.CodeShuttingDown, "1"},
		{errors.New("node c is not a voter of this shard"), http.StatusConflict, httpapi.CodeTransferFailed, ""},
	} {
		t.Run(k.name(), func(t *testing.T) {
			a := newPeer(t).serve(t, newFakeStore("a", testShardCount), &fakeCluster{leader: "a", local: true, transferErr: k.err})
			k.want(t, call(t, http.MethodPost, a.url+"/v1/shards/1/transfer-leadership?to=c", ""))
		})
	}
}

// A route that does not exist and a method a route does not take are
// answered in the JSON error model too, never with echo's own body.
func TestUnknownRoutesAndMethodsHaveTheirCodes(t *testing.T) {
	a := newPeer(t).serve(t, newFakeStore("a", testShardCount), nil)
	wantError(t, call(t, http.MethodGet, a.url+"/v2/nothing", ""), http.StatusNotFound, httpapi.CodeNotFound)
	wantError(t, call(t, http.MethodDelete, a.url+"/v1/cluster", ""), http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed)
}
