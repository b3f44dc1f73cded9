package client_test

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/testnode"
)

// hostLog records the host of every session request a client sends.
type hostLog struct {
	mu    sync.Mutex
	hosts []string
	next  http.RoundTripper
}

func (h *hostLog) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Path, "/api/chat/session/") {
		h.mu.Lock()
		h.hosts = append(h.hosts, "http://"+r.URL.Host)
		h.mu.Unlock()
	}
	return h.next.RoundTrip(r)
}

func (h *hostLog) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.hosts
	h.hosts = nil
	return out
}

func urlOf(nodes []*testnode.Node, id string) string {
	for _, n := range nodes {
		if n.ID == id {
			return n.URL
		}
	}
	return ""
}

func TestRouteToLeaderSendsSessionRequestsToTheShardLeaderAndFollowsItAfterACrash(t *testing.T) {
	nodes := testnode.Start(t, testnode.Options{Nodes: 3, Shards: 2})
	ctx := ctx(t)
	log := &hostLog{next: http.DefaultTransport.(*http.Transport).Clone()}
	var endpoints []string
	for _, n := range nodes {
		endpoints = append(endpoints, n.URL)
	}
	c := newClient(t, client.Config{Endpoints: endpoints, RouteToLeader: true, Transport: log, Backoff: 50 * time.Millisecond})

	o, err := c.Owner(ctx, "routed")
	if err != nil || o.Leader == "" {
		t.Fatalf("Owner = %+v, %v", o, err)
	}
	for i := range 3 {
		if _, err := c.Append(ctx, "routed", []client.Message{{ID: "m" + string(rune('0'+i)), Role: "user", Content: "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range log.take() {
		if h != urlOf(nodes, o.Leader) {
			t.Fatalf("a session request went to %s, not to the leader %s (%s)", h, o.Leader, urlOf(nodes, o.Leader))
		}
	}

	// The leader crashes: the cached route fails, the request goes to the
	// other nodes, and once a new leader is elected the cache learns it.
	for _, n := range nodes {
		if n.ID == o.Leader {
			n.Kill()
		}
	}
	var newLeader string
	deadline := time.Now().Add(30 * time.Second)
	for newLeader == "" || newLeader == o.Leader {
		if time.Now().After(deadline) {
			t.Fatal("no new leader within 30s")
		}
		time.Sleep(100 * time.Millisecond)
		if no, err := c.Owner(ctx, "routed"); err == nil {
			newLeader = no.Leader
		}
	}
	if _, err := c.Append(ctx, "routed", []client.Message{{ID: "after-crash", Role: "user", Content: "y"}}); err != nil {
		t.Fatalf("append after the leader crashed: %v", err)
	}
	log.take()
	s, err := c.Get(ctx, "routed")
	if err != nil || len(s.Messages) != 4 {
		t.Fatalf("Get = %+v, %v", s, err)
	}
	if hosts := log.take(); len(hosts) != 1 || hosts[0] != urlOf(nodes, newLeader) {
		t.Fatalf("after the crash the read went to %v, want the new leader %s", hosts, urlOf(nodes, newLeader))
	}
	if _, err := c.Get(ctx, "no-such-session"); !errors.Is(err, client.ErrSessionNotFound) {
		t.Fatalf("routed read of a missing session: %v", err)
	}
}
