package cluster_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"testing"
)

// listAllVia pages through GET /v1/sessions on node n, limit at a time, and
// returns every id listed.
func listAllVia(t *testing.T, n *testNode, prefix string, limit int) []string {
	t.Helper()
	var ids []string
	after := ""
	for pages := 0; pages < 10_000; pages++ {
		q := url.Values{"limit": {fmt.Sprint(limit)}, "prefix": {prefix}, "after": {after}}
		code, _, body := do(t, "GET", n.url("/v1/sessions?"+q.Encode()), nil, nil)
		if code != 200 {
			t.Fatalf("GET /v1/sessions?%s on %s = %d %s", q.Encode(), n.id, code, body)
		}
		var l struct {
			Sessions []struct{ ID string }
			Next     string
		}
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		for _, s := range l.Sessions {
			ids = append(ids, s.ID)
		}
		if l.Next == "" {
			return ids
		}
		after = l.Next
	}
	t.Fatalf("listing on %s never ends", n.id)
	return nil
}

// With one replica per shard no node holds every shard, yet every node
// lists every session of the cluster: the shards it does not hold are
// asked of the nodes that do, over the internal API.
func TestEveryNodeListsTheSessionsOfShardsItDoesNotHold(t *testing.T) {
	const shards = 8
	nodes := make([]*testNode, 3)
	var join []string
	for i := range nodes {
		nodes[i] = newTestNode(t, fmt.Sprintf("n%d", i+1), shards, len(nodes), 1)
		join = append(join, fmt.Sprintf("127.0.0.1:%d", nodes[i].gossipPort))
	}
	for _, n := range nodes {
		n.join = join
		n.start()
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})
	for _, n := range nodes {
		waitReady(t, n)
	}
	for _, n := range nodes {
		local := 0
		for _, s := range view(t, n).Shards {
			if s.Local {
				local++
			}
		}
		if local == shards {
			t.Fatalf("%s holds every shard; the test needs nodes that do not", n.id)
		}
	}

	var want []string
	for i := 0; i < 300; i++ {
		id := fmt.Sprintf("list-%03d", i)
		if code := appendMsg(t, nodes[i%len(nodes)], id, "m1"); !stored(code) {
			t.Fatalf("append to %s = %d", id, code)
		}
		want = append(want, id)
	}
	for _, n := range nodes {
		if got := listAllVia(t, n, "", 17); !slices.Equal(got, want) {
			t.Fatalf("%s lists %d sessions, want %d: %v", n.id, len(got), len(want), got)
		}
		if got := listAllVia(t, n, "list-1", 1000); !slices.Equal(got, want[100:200]) {
			t.Fatalf("%s lists %d sessions with prefix list-1, want 100", n.id, len(got))
		}
	}
}
