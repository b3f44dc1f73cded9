package cluster_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// workload appends to a set of sessions from several goroutines through
// whichever nodes are up, retrying every append with the same id until it is
// stored, and records what was acknowledged.
type workload struct {
	t     *testing.T
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	nodes []*testNode
	acked map[string][]string
	sent  int
}

func startWorkload(t *testing.T, nodes []*testNode, sessions, writers int) *workload {
	w := &workload{t: t, stop: make(chan struct{}), nodes: nodes, acked: map[string][]string{}}
	for g := 0; g < writers; g++ {
		w.wg.Add(1)
		go w.writer(g, sessions)
	}
	return w
}

// setNodes changes which nodes the workload sends to.
func (w *workload) setNodes(nodes []*testNode) {
	w.mu.Lock()
	w.nodes = nodes
	w.mu.Unlock()
}

func (w *workload) pick(i int) *testNode {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nodes[i%len(w.nodes)]
}

func (w *workload) writer(g, sessions int) {
	defer w.wg.Done()
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			return
		default:
		}
		session, id := fmt.Sprintf("load%d", (g*7+i)%sessions), fmt.Sprintf("g%d-%d", g, i)
		for attempt := 0; ; attempt++ {
			code, _, _ := do(w.t, "POST", w.pick(i+attempt).url("/api/chat/session/"+session+"/messages"),
				map[string]string{"id": id, "role": "user", "content": id}, nil)
			if stored(code) {
				w.mu.Lock()
				w.acked[session] = append(w.acked[session], id)
				w.sent++
				w.mu.Unlock()
				break
			}
			select {
			case <-w.stop: // the outcome of this id stays unknown
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// finish stops the writers and returns the acknowledged ids per session.
func (w *workload) finish() map[string][]string {
	close(w.stop)
	w.wg.Wait()
	w.t.Logf("workload: %d appends acknowledged", w.sent)
	return w.acked
}

// verify reads every session through via and checks that every
// acknowledged append is present exactly once with seq 1..n.
func verifyAcked(t *testing.T, via *testNode, acked map[string][]string) {
	t.Helper()
	for s, ids := range acked {
		var msgs []message
		eventually(t, 15*time.Second, func() error {
			var code int
			msgs, code = messages(t, via, s, "linearizable")
			if code != 200 {
				return fmt.Errorf("read %s via %s = %d", s, via.id, code)
			}
			return nil
		})
		assertAckedOnce(t, s, msgs, ids)
	}
}

// ownershipMonitor polls every node's /v1/cluster and records, per shard and
// term, which node reported itself leader: two in one term would mean two
// owners of the same sessions.
type ownershipMonitor struct {
	mu        sync.Mutex
	leaders   map[string]string
	violation string
	stop      chan struct{}
	done      chan struct{}
}

func monitorOwnership(t *testing.T, nodes func() []*testNode) *ownershipMonitor {
	m := &ownershipMonitor{leaders: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			select {
			case <-m.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, n := range nodes() {
				code, _, body := do(t, "GET", n.url("/v1/cluster"), nil, nil)
				var v clusterView
				if code != 200 || json.Unmarshal(body, &v) != nil {
					continue
				}
				m.mu.Lock()
				for _, s := range v.Shards {
					if s.State != "Leader" {
						continue
					}
					key := fmt.Sprintf("%d/%d", s.ID, s.Term)
					if prev, ok := m.leaders[key]; ok && prev != v.Node && m.violation == "" {
						m.violation = fmt.Sprintf("shard %d term %d led by %s and %s", s.ID, s.Term, prev, v.Node)
					}
					m.leaders[key] = v.Node
				}
				m.mu.Unlock()
			}
		}
	}()
	t.Cleanup(m.close)
	return m
}

func (m *ownershipMonitor) close() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
}

// check fails the test if two nodes ever led one shard in the same term.
func (m *ownershipMonitor) check(t *testing.T) {
	t.Helper()
	m.close()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.violation != "" {
		t.Fatal(m.violation)
	}
	if len(m.leaders) == 0 {
		t.Fatal("ownership monitor saw no leader at all")
	}
}

// waitConverged waits until, in the view of each shard's leader, the shard
// has exactly its placed replicas as voters, and leadership is spread within
// one shard across the nodes holding replicas.
func waitConverged(t *testing.T, nodes []*testNode, shards int, within time.Duration) {
	t.Helper()
	eventually(t, within, func() error {
		led := map[string]int{}
		convergedShards := map[uint32]bool{}
		var pending []string
		for _, n := range nodes {
			for _, s := range view(t, n).Shards {
				if s.State != "Leader" {
					continue
				}
				if s.Converged && s.Move == nil {
					convergedShards[s.ID] = true
					led[n.id]++
				} else {
					pending = append(pending, fmt.Sprintf("shard %d on %s: replicas %v desired %v move %+v",
						s.ID, n.id, s.Replicas, s.Desired, s.Move))
				}
			}
		}
		if len(convergedShards) != shards {
			return fmt.Errorf("%d of %d shards converged; %v", len(convergedShards), shards, pending)
		}
		lo, hi := shards, 0
		for _, n := range nodes {
			lo, hi = min(lo, led[n.id]), max(hi, led[n.id])
		}
		if hi-lo > 1 {
			return fmt.Errorf("leaders not balanced: %v", led)
		}
		return nil
	})
}
