package main

import (
	"context"
	"errors"
	"time"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/baseurl"
	"github.com/sessiond/sessiond/internal/check"
)

// staticTarget is an existing cluster the checker only talks to.
type staticTarget struct{ nodes []check.Node }

func newStaticTarget(addrs string, creds check.Credentials) (*staticTarget, error) {
	urls, err := baseurl.ParseList(addrs)
	if err != nil {
		return nil, err
	}
	t := &staticTarget{}
	c, err := client.New(client.Config{Endpoints: urls, Token: creds.Token, TLS: creds.TLS,
		Timeout: 3 * time.Second, MaxAttempts: 1})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	for _, u := range urls {
		t.nodes = append(t.nodes, check.Node{Name: nodeName(c, u), URL: u})
	}
	return t, nil
}

// nodeName asks a node for its id; the address stands in when it cannot say.
func nodeName(c *client.Client, url string) string {
	one, err := c.WithEndpoints(url)
	if err != nil {
		return url
	}
	v, err := one.Cluster(context.Background())
	if err != nil || v.Node == "" {
		return url
	}
	return v.Node
}

func (t *staticTarget) Nodes() []check.Node { return t.nodes }

func (t *staticTarget) Kill(context.Context, string) error          { return errors.ErrUnsupported }
func (t *staticTarget) Start(context.Context, string) error         { return errors.ErrUnsupported }
func (t *staticTarget) Stop(context.Context, string) error          { return errors.ErrUnsupported }
func (t *staticTarget) Pause(context.Context, string) error         { return errors.ErrUnsupported }
func (t *staticTarget) Resume(context.Context, string) error        { return errors.ErrUnsupported }
func (t *staticTarget) Isolate(context.Context, string, bool) error { return errors.ErrUnsupported }
func (t *staticTarget) Heal(context.Context, string, bool) error    { return errors.ErrUnsupported }
func (t *staticTarget) Drain(context.Context, string) error         { return errors.ErrUnsupported }
