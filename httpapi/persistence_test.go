package httpapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
)

// persistenceWorkload writes a mix of every kind of write through the API
// and returns the ids of the sessions that exist and of those deleted.
func persistenceWorkload(t *testing.T, n *node) (live, deleted []string) {
	t.Helper()
	for i := 0; i < 12; i++ {
		id := fmt.Sprintf("p-%d", i)
		live = append(live, id)
		batch := []any{}
		for j := 0; j < 30; j++ {
			m := msg(fmt.Sprintf("m%d", j), []string{"user", "assistant"}[j%2], fmt.Sprintf("message %d of %s ✓", j, id))
			if j%7 == 0 {
				m["meta"] = map[string]any{"j": j, "tags": []string{"a", "b"}}
			}
			batch = append(batch, m)
		}
		wantStatus(t, n.do(http.MethodPost, sessionPath(id, "/messages"), map[string]any{"messages": batch}), http.StatusCreated)
		wantStatus(t, n.do(http.MethodPost, sessionPath(id, "/messages"), `{"role":"user","content":"keyed"}`, "Idempotency-Key", "key-"+id), http.StatusCreated)
		wantStatus(t, n.do(http.MethodPut, sessionPath(id), fmt.Sprintf(`{"bookingInfo":{"n":%d,"deep":{"a":[1,2,3]}},"lastSearchCriteria":"q%d","drop":true}`, i, i)), http.StatusOK)
		wantStatus(t, n.do(http.MethodPatch, sessionPath(id), `{"bookingInfo":{"deep":{"b":null,"c":"x"}},"drop":null}`), http.StatusOK)
		wantStatus(t, n.do(http.MethodPut, sessionPath(id, "/pending-match"), fmt.Sprintf(`{"match":"%d"}`, i)), http.StatusOK)
		wantStatus(t, n.do(http.MethodPut, sessionPath(id, "/state/tmp"), `1`), http.StatusOK)
		wantStatus(t, n.do(http.MethodDelete, sessionPath(id, "/state/tmp"), nil), http.StatusNoContent)
	}
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("gone-%d", i)
		deleted = append(deleted, id)
		n.appendMsg(id, "m", "bye")
		wantStatus(t, n.do(http.MethodDelete, sessionPath(id), nil), http.StatusNoContent)
	}
	return live, deleted
}

// readAll reads every view of every live session.
func readAll(t *testing.T, n *node, ids []string) map[string]*response {
	t.Helper()
	out := map[string]*response{}
	for _, id := range ids {
		for _, p := range []string{"", "/messages?limit=1000", "/messages?after=10&limit=5", "/state", "/pending-match", "/state/bookingInfo"} {
			r := n.get(sessionPath(id, p))
			wantStatus(t, r, http.StatusOK)
			out[sessionPath(id, p)] = r
		}
	}
	return out
}

// TestDataWrittenThroughTheAPISurvivesARestart writes through HTTP, stops
// the node, opens the same data dir with a new listener and compares every
// read byte for byte: once replaying the raft log, once restoring from a
// snapshot.
func TestDataWrittenThroughTheAPISurvivesARestart(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", snapshot), func(t *testing.T) {
			dir := t.TempDir()
			n := openNode(t, dir)
			live, deleted := persistenceWorkload(t, n)
			if snapshot {
				for _, s := range n.host.Shards() {
					if err := s.Snapshot(); err != nil {
						t.Fatalf("snapshot shard %d: %v", s.ID(), err)
					}
				}
				// Writes after the snapshot are replayed from the log on top.
				n.appendMsg(live[0], "after-snapshot", "tail")
			}
			before := readAll(t, n, live)
			n.close()

			m := openNode(t, dir)
			after := readAll(t, m, live)
			for path, b := range before {
				a := after[path]
				if !bytes.Equal(a.Body, b.Body) || a.ETag() != b.ETag() {
					t.Fatalf("%s changed across the restart:\nbefore %s (ETag %s)\nafter  %s (ETag %s)", path, b.Body, b.ETag(), a.Body, a.ETag())
				}
			}
			for _, id := range deleted {
				m.wantAbsent(id)
			}

			// Idempotency survives: replays are answered from the stored
			// messages, conflicts are still conflicts, and new messages
			// continue the sequence.
			id := live[1]
			r := m.do(http.MethodPost, sessionPath(id, "/messages"), msg("m3", "assistant", "message 3 of "+id+" ✓"))
			wantStatus(t, r, http.StatusOK)
			var a appendResp
			decode(t, r, &a)
			if a.Messages[0].Seq != 4 {
				t.Fatalf("replayed m3 answered seq %d", a.Messages[0].Seq)
			}
			wantStatus(t, m.do(http.MethodPost, sessionPath(id, "/messages"), `{"role":"user","content":"keyed"}`, "Idempotency-Key", "key-"+id), http.StatusOK)
			wantError(t, m.do(http.MethodPost, sessionPath(id, "/messages"), msg("m3", "user", "other")), http.StatusConflict, "id_conflict")
			a = m.appendMsg(id, "new", "after restart")
			if a.Messages[0].Seq != 32 {
				t.Fatalf("first append after restart got seq %d, want 32", a.Messages[0].Seq)
			}
			var doc sessionDoc
			decode(t, before[sessionPath(id)], &doc)
			if a.Version <= doc.Version {
				t.Fatalf("version went back: %d after a restart, was %d", a.Version, doc.Version)
			}
		})
	}
}
