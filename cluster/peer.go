package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sessiond/sessiond/client"
)

// The internal HTTP API nodes use to manage each other's replicas. The shard
// leader drives every change; a node only acts on its own replicas.
const (
	internalPrefix = "/internal/v1/shards/"
)

// ReplicaStatus is a node's report on its own replica of a shard.
type ReplicaStatus struct {
	Shard        uint32 `json:"shard"`
	LastIndex    uint64 `json:"lastIndex"`
	AppliedIndex uint64 `json:"appliedIndex"`
	InConfig     bool   `json:"inConfig"`
}

// Membership is a shard leader's view of its group's configuration.
type Membership struct {
	Shard       uint32   `json:"shard"`
	Leader      string   `json:"leader"`
	ConfigIndex uint64   `json:"configIndex"`
	Committed   bool     `json:"committed"` // the configuration is committed
	Voters      []string `json:"voters"`
	Nonvoters   []string `json:"nonvoters"`
}

// Lists reports whether the configuration includes node id.
func (m *Membership) Lists(id string) bool {
	for _, v := range append(append([]string{}, m.Voters...), m.Nonvoters...) {
		if v == id {
			return true
		}
	}
	return false
}

// ErrBusy is returned by CreateReplica when the node is already catching up
// as many new replicas as it allows at once.
var ErrBusy = errors.New("node is catching up as many replicas as it allows; try later")

// peerClient calls other nodes' internal API, over HTTPS when tlsConf is
// set, and with a bearer token when token is.
type peerClient struct {
	http   *http.Client
	scheme string
	token  func() string
}

func newPeerClient(tlsConf *tls.Config, token func() string) *peerClient {
	p := &peerClient{http: &http.Client{Timeout: 5 * time.Second}, scheme: "http", token: token}
	if tlsConf != nil {
		p.http.Transport = &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true,
			MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second}
		p.scheme = "https"
	}
	return p
}

func (p *peerClient) call(ctx context.Context, method, httpAddr, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, p.scheme+"://"+httpAddr+path, nil)
	if err != nil {
		return err
	}
	p.authorize(req)
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readPeerError(resp, p.scheme+"://"+httpAddr)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// authorize adds the node's bearer token, when it has one.
func (p *peerClient) authorize(req *http.Request) {
	if p.token != nil {
		if t := p.token(); t != "" {
			req.Header.Set("Authorization", "Bearer "+t)
		}
	}
}

// readPeerError reads a non-2xx answer's error envelope into a
// *client.Error.
func readPeerError(resp *http.Response, endpoint string) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return client.DecodeError(resp.StatusCode, resp.Header, body, endpoint)
}

func (p *peerClient) createReplica(ctx context.Context, addr string, s uint32) error {
	return p.call(ctx, http.MethodPost, addr, fmt.Sprintf("%s%d/replica", internalPrefix, s), nil)
}

func (p *peerClient) dropReplica(ctx context.Context, addr string, s uint32) error {
	return p.call(ctx, http.MethodDelete, addr, fmt.Sprintf("%s%d/replica", internalPrefix, s), nil)
}

func (p *peerClient) replicaStatus(ctx context.Context, addr string, s uint32) (ReplicaStatus, error) {
	var st ReplicaStatus
	err := p.call(ctx, http.MethodGet, addr, fmt.Sprintf("%s%d/replica", internalPrefix, s), &st)
	return st, err
}

func (p *peerClient) membership(ctx context.Context, addr string, s uint32) (Membership, error) {
	var m Membership
	err := p.call(ctx, http.MethodGet, addr, fmt.Sprintf("%s%d/membership", internalPrefix, s), &m)
	return m, err
}
