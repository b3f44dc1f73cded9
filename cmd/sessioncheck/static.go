package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/sessiond/sessiond/internal/baseurl"
	"github.com/sessiond/sessiond/internal/check"
	"github.com/sessiond/sessiond/internal/clientauth"
)

// staticTarget is an existing cluster the checker only talks to.
type staticTarget struct{ nodes []check.Node }

func newStaticTarget(addrs string, creds check.Credentials) (*staticTarget, error) {
	urls, err := baseurl.ParseList(addrs)
	if err != nil {
		return nil, err
	}
	t := &staticTarget{}
	tr := &http.Transport{TLSClientConfig: creds.TLS}
	hc := &http.Client{Timeout: 3 * time.Second, Transport: clientauth.Bearer(tr, creds.Token)}
	for _, u := range urls {
		t.nodes = append(t.nodes, check.Node{Name: nodeName(hc, u), URL: u})
	}
	return t, nil
}

// nodeName asks a node for its id; the address stands in when it cannot say.
func nodeName(hc *http.Client, url string) string {
	resp, err := hc.Get(url + "/v1/cluster")
	if err != nil {
		return url
	}
	defer resp.Body.Close()
	var v struct {
		Node string `json:"node"`
	}
	if json.NewDecoder(resp.Body).Decode(&v) != nil || v.Node == "" {
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
