package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/testnode"
)

func TestAStaleRouteIsCorrectedByTheNodesRedirectToTheLeader(t *testing.T) {
	// One replica per shard: a node without the shard answers a routed
	// request with a 307 to the node that has it.
	nodes := testnode.Start(t, testnode.Options{Nodes: 2, Shards: 4, Replicas: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.New(client.Config{Endpoints: []string{nodes[0].URL, nodes[1].URL}, RouteToLeader: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o, err := c.Owner(ctx, "moved")
	if err != nil || o.Leader == "" {
		t.Fatalf("Owner = %+v, %v", o, err)
	}
	leader, other := nodes[0], nodes[1]
	if leader.ID != o.Leader {
		leader, other = other, leader
	}
	// The cache believes the other node leads the shard.
	client.SetRoute(c, "moved", o.Shard, other.URL)

	res, err := c.Update(ctx, "moved", map[string]int{"step": 1})
	if err != nil || string(res.Fields["step"]) != "1" {
		t.Fatalf("Update through a stale route: %+v, %v", res, err)
	}
	if got := client.Route(c, o.Shard); got != leader.URL {
		t.Fatalf("after the 307 the cache says %s leads shard %d, want %s", got, o.Shard, leader.URL)
	}
}
