package shard

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestQuietAppendsAnswerOnlyARepeatTheFollowerAcknowledgedWhileItHeartbeats
// walks the conditions under which a repeated empty append is answered in
// place of the follower; each case breaks one of them.
func TestQuietAppendsAnswerOnlyARepeatTheFollowerAcknowledgedWhileItHeartbeats(t *testing.T) {
	const lease = 200 * time.Millisecond
	const peer = raft.ServerID("f")
	t0 := time.Unix(1000, 0)
	empty := raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 10, PrevLogTerm: 3, LeaderCommitIndex: 10}
	acked := raft.AppendEntriesResponse{Term: 3, LastLog: 10, Success: true}
	beat := raft.AppendEntriesRequest{Term: 3}
	beatOK := raft.AppendEntriesResponse{Term: 3, Success: true}

	cases := []struct {
		name   string
		setup  func(q *quietAppends)
		req    raft.AppendEntriesRequest
		at     time.Time
		answer bool
	}{
		{"a repeat while the follower heartbeats", nil, empty, t0.Add(100 * time.Millisecond), true},
		{"nothing acknowledged yet", func(q *quietAppends) { q.forget(peer) }, empty, t0, false},
		{"a newer commit index", nil, withCommit(empty, 11), t0, false},
		{"entries to send", nil, withEntries(empty), t0, false},
		{"a heartbeat, not an append", nil, raft.AppendEntriesRequest{Term: 3}, t0, false},
		{"the acknowledgement is due for a refresh", nil, empty, t0.Add(quietRefresh), false},
		{"no heartbeat answered within the lease", nil, empty, t0.Add(lease), false},
		{"a newer term", nil, withTerm(empty, 4), t0, false},
		{"the follower refused a heartbeat", func(q *quietAppends) {
			q.heartbeat(peer, &beat, &raft.AppendEntriesResponse{Term: 4, Success: false}, t0)
		}, empty, t0, false},
		{"the follower's log ends elsewhere", func(q *quietAppends) {
			q.sent(peer, &empty, &raft.AppendEntriesResponse{Term: 3, LastLog: 12, Success: true}, t0)
		}, empty, t0, false},
		{"the follower failed the append", func(q *quietAppends) {
			q.sent(peer, &empty, &raft.AppendEntriesResponse{Term: 3, LastLog: 10}, t0)
		}, empty, t0, false},
		{"a heartbeat of another follower", func(q *quietAppends) {
			q.forget(peer)
			q.sent(peer, &empty, &acked, t0)
			q.heartbeat("g", &beat, &beatOK, t0)
		}, empty, t0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := newQuietAppends(lease)
			q.sent(peer, &empty, &acked, t0)
			q.heartbeat(peer, &beat, &beatOK, t0)
			if tc.setup != nil {
				tc.setup(q)
			}
			var resp raft.AppendEntriesResponse
			got := q.answer(peer, &tc.req, &resp, tc.at)
			if got != tc.answer {
				t.Fatalf("answered in place: %v, want %v", got, tc.answer)
			}
			if got && (resp.Term != acked.Term || resp.LastLog != acked.LastLog || resp.Success != acked.Success) {
				t.Fatalf("answer %+v, want the follower's own %+v", resp, acked)
			}
		})
	}
}

func withCommit(r raft.AppendEntriesRequest, c uint64) raft.AppendEntriesRequest {
	r.LeaderCommitIndex = c
	return r
}

func withTerm(r raft.AppendEntriesRequest, term uint64) raft.AppendEntriesRequest {
	r.Term = term
	return r
}

func withEntries(r raft.AppendEntriesRequest) raft.AppendEntriesRequest {
	r.Entries = []*raft.Log{{Index: 11, Term: 3, Type: raft.LogCommand, Data: []byte("x")}}
	return r
}
