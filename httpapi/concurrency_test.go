package httpapi_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// ackLog records, per session, every acknowledged message id and its seq.
type ackLog struct {
	mu   sync.Mutex
	acks map[string]map[string]uint64
}

func (l *ackLog) add(session, id string, seq uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.acks[session][id]; ok && old != seq {
		return fmt.Errorf("message %s/%s acknowledged as seq %d and %d", session, id, old, seq)
	}
	l.acks[session][id] = seq
	return nil
}

func (l *ackLog) snapshot(session string) map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.acks[session])
}

// checkMessages verifies that msgs are numbered 1..n without gaps or
// repeated ids and hold every acknowledged message at its acknowledged seq.
func checkMessages(msgs []struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id"`
}, acked map[string]uint64) error {
	ids := make(map[string]uint64, len(msgs))
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			return fmt.Errorf("message %d has seq %d", i, m.Seq)
		}
		if _, dup := ids[m.ID]; dup {
			return fmt.Errorf("message id %s stored twice", m.ID)
		}
		ids[m.ID] = m.Seq
	}
	for id, seq := range acked {
		got, ok := ids[id]
		if !ok {
			return fmt.Errorf("acknowledged message %s missing from a later linearizable read of %d messages", id, len(msgs))
		}
		if got != seq {
			return fmt.Errorf("acknowledged message %s at seq %d, stored at %d", id, seq, got)
		}
	}
	return nil
}

// TestConcurrentAppendsAreStoredExactlyOnceAndReadsSeeEveryAck runs 32
// writers appending unique messages to 8 sessions (some retried) while
// readers read linearizably. Every read must contain every message
// acknowledged before it started, numbered 1..n; at the end each session
// holds exactly its acknowledged messages.
func TestConcurrentAppendsAreStoredExactlyOnceAndReadsSeeEveryAck(t *testing.T) {
	n := startNode(t)
	const (
		sessions = 8
		writers  = 32
		perWrite = 20
		readers  = 8
	)
	log := &ackLog{acks: map[string]map[string]uint64{}}
	for s := 0; s < sessions; s++ {
		log.acks[fmt.Sprintf("conc-%d", s)] = map[string]uint64{}
	}

	var wg, rwg sync.WaitGroup
	done := make(chan struct{})
	var reads atomic.Int64
	for r := 0; r < readers; r++ {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			last := map[string]int{}
			for i := r; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				id := fmt.Sprintf("conc-%d", i%sessions)
				acked := log.snapshot(id)
				resp, err := n.tryDo(http.MethodGet, sessionPath(id)+"?consistency=linearizable", nil)
				if err != nil {
					t.Errorf("read %s: %v", id, err)
					return
				}
				if resp.Status == http.StatusNotFound && len(acked) == 0 {
					continue
				}
				if resp.Status != http.StatusOK {
					t.Errorf("read: %s", resp)
					return
				}
				var doc struct {
					Messages []struct {
						Seq uint64 `json:"seq"`
						ID  string `json:"id"`
					} `json:"messages"`
				}
				if err := json.Unmarshal(resp.Body, &doc); err != nil {
					t.Errorf("read %s: %v", id, err)
					return
				}
				if err := checkMessages(doc.Messages, acked); err != nil {
					t.Errorf("read %s: %v", id, err)
					return
				}
				if len(doc.Messages) < last[id] {
					t.Errorf("read %s: %d messages after an earlier read saw %d", id, len(doc.Messages), last[id])
					return
				}
				last[id] = len(doc.Messages)
				reads.Add(1)
			}
		}()
	}

	var retried atomic.Int64
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWrite; i++ {
				session := fmt.Sprintf("conc-%d", (w+i)%sessions)
				body := msg(fmt.Sprintf("w%02d-%03d", w, i), "user", fmt.Sprintf("writer %d message %d", w, i))
				var seq uint64
				for attempt := 0; ; attempt++ {
					resp, err := n.tryDo(http.MethodPost, sessionPath(session, "/messages"), body)
					if err != nil {
						t.Errorf("append: %v", err)
						return
					}
					// 503s say "retry"; a retry of the same id is safe.
					if resp.Status == http.StatusServiceUnavailable && attempt < 20 {
						retried.Add(1)
						continue
					}
					if resp.Status != http.StatusCreated && !(attempt > 0 && resp.Status == http.StatusOK) {
						t.Errorf("append: %s", resp)
						return
					}
					var a appendResp
					if err := json.Unmarshal(resp.Body, &a); err != nil || len(a.Messages) != 1 {
						t.Errorf("append: %s: %v", resp, err)
						return
					}
					seq = a.Messages[0].Seq
					break
				}
				if err := log.add(session, body["id"].(string), seq); err != nil {
					t.Error(err)
					return
				}
				if i%5 == 0 { // a client retry after a lost answer
					resp, err := n.tryDo(http.MethodPost, sessionPath(session, "/messages"), body)
					if err != nil || resp.Status != http.StatusOK {
						t.Errorf("replay: %v %v", resp, err)
						return
					}
					var a appendResp
					if err := json.Unmarshal(resp.Body, &a); err != nil || a.Messages[0].Seq != seq {
						t.Errorf("replay answered %s, first answer seq %d", resp, seq)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	rwg.Wait()
	if t.Failed() {
		return
	}

	total := 0
	for s := 0; s < sessions; s++ {
		id := fmt.Sprintf("conc-%d", s)
		acked := log.snapshot(id)
		total += len(acked)
		r := n.get(sessionPath(id))
		wantStatus(t, r, http.StatusOK)
		var doc struct {
			Messages []struct {
				Seq uint64 `json:"seq"`
				ID  string `json:"id"`
			} `json:"messages"`
		}
		decode(t, r, &doc)
		if err := checkMessages(doc.Messages, acked); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if len(doc.Messages) != len(acked) {
			t.Fatalf("%s holds %d messages, %d were acknowledged", id, len(doc.Messages), len(acked))
		}
	}
	if total != writers*perWrite {
		t.Fatalf("%d messages acknowledged, want %d", total, writers*perWrite)
	}
	t.Logf("%d appends, %d retried after 503, %d linearizable reads checked", total, retried.Load(), reads.Load())
}
