package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// Member is one node of the cluster as a node sees it.
type Member struct {
	ID         string `json:"id"`
	State      string `json:"state"` // alive, suspect, dead, left
	HTTPAddr   string `json:"httpAddr"`
	RaftAddr   string `json:"raftAddr"`
	GossipAddr string `json:"gossipAddr"`
	Formed     bool   `json:"formed"`
	Draining   bool   `json:"draining"`
	Leading    int    `json:"leading"`
	Replicas   int    `json:"replicas"`
	Since      string `json:"since,omitempty"` // RFC 3339
}

// Replica is one raft server of a shard.
type Replica struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	Suffrage string `json:"suffrage"` // voter, nonvoter
}

// Move is a replica move under way.
type Move struct {
	Shard   uint32 `json:"shard"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	Step    string `json:"step"`
	Started string `json:"started,omitempty"`
}

// Shard is one shard as a node sees it: its own replica's raft state when
// Local, else the leader known from gossip.
type Shard struct {
	ID             uint32    `json:"id"`
	State          string    `json:"state"`
	Leader         string    `json:"leader"`
	LeaderRaftAddr string    `json:"leaderRaftAddr,omitempty"`
	Term           uint64    `json:"term"`
	LastIndex      uint64    `json:"lastIndex"`
	CommitIndex    uint64    `json:"commitIndex"`
	AppliedIndex   uint64    `json:"appliedIndex"`
	Sessions       int       `json:"sessions"`
	Replicas       []Replica `json:"replicas"`
	Local          bool      `json:"local"`
	Desired        []string  `json:"desired"`
	Converged      bool      `json:"converged"`
	Move           *Move     `json:"move,omitempty"`
	// Source is the node whose view this is; set by tools that merge
	// views, never by a node.
	Source string `json:"source,omitempty"`
}

// Summary condenses the shards one node holds.
type Summary struct {
	ShardsSeen      int            `json:"shardsSeen"`
	ShardsConverged int            `json:"shardsConverged"`
	MovesInFlight   int            `json:"movesInFlight"`
	LeadersPerNode  map[string]int `json:"leadersPerNode"`
}

// ClusterStatus is GET /v1/cluster: one node's view of the cluster.
type ClusterStatus struct {
	Node       string   `json:"node"`
	Version    string   `json:"version,omitempty"` // the node's build
	ShardCount int      `json:"shardCount"`
	Ready      bool     `json:"ready"`
	Summary    Summary  `json:"summary"`
	Members    []Member `json:"members"`
	Shards     []Shard  `json:"shards"`
	Streams    int      `json:"streams"`
	// Endpoint is the base URL of the node that answered.
	Endpoint string `json:"-"`
}

// Cluster returns the view of the first node that answers.
func (c *Client) Cluster(ctx context.Context) (*ClusterStatus, error) {
	return c.clusterStatus(ctx)
}

func (c *Client) clusterStatus(ctx context.Context) (*ClusterStatus, error) {
	resp, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/cluster", safety: readOnly})
	if err != nil {
		return nil, err
	}
	cs := &ClusterStatus{Endpoint: resp.endpoint}
	return cs, decode(resp, cs)
}

// Owner is GET /v1/sessions/{id}/owner: where a session lives.
type Owner struct {
	Session  string   `json:"session"`
	Shard    uint32   `json:"shard"`
	Leader   string   `json:"leader"` // node id; "" when unknown
	Replicas []string `json:"replicas"`
}

// Owner returns the shard, leader and replicas of session id.
func (c *Client) Owner(ctx context.Context, id string) (*Owner, error) { return c.owner(ctx, id) }

func (c *Client) owner(ctx context.Context, id string) (*Owner, error) {
	resp, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/sessions/" + url.PathEscape(id) + "/owner", safety: readOnly})
	if err != nil {
		return nil, err
	}
	var o Owner
	return &o, decode(resp, &o)
}

// Drain asks node to move its replicas and leadership away and exit. It
// returns once the drain started; watch Cluster for its progress.
func (c *Client) Drain(ctx context.Context, node string) error {
	_, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/nodes/" + url.PathEscape(node) + "/drain", safety: unsafe})
	return err
}

// TransferLeadership moves leadership of shard to node to ("" for the most
// up-to-date replica) and returns the new leader, "" when the old leader
// stepped down before hearing from it.
func (c *Client) TransferLeadership(ctx context.Context, shard uint32, to string) (string, error) {
	path := fmt.Sprintf("/v1/shards/%d/transfer-leadership", shard)
	if to != "" {
		path += "?to=" + url.QueryEscape(to)
	}
	resp, err := c.do(ctx, &request{method: http.MethodPost, path: path, safety: unsafe})
	if err != nil {
		return "", err
	}
	var tr struct {
		Leader string `json:"leader"`
	}
	return tr.Leader, decode(resp, &tr)
}

// SessionInfo is one session of a listing: its counts, not its contents.
type SessionInfo struct {
	ID           string `json:"id"`
	CreatedAt    int64  `json:"createdAt"`
	UpdatedAt    int64  `json:"updatedAt"`
	MessageCount int    `json:"messageCount"`
	SizeBytes    int64  `json:"sizeBytes"`
	Version      uint64 `json:"version"`
}

// ListQuery selects a page of sessions: ids starting with Prefix, after
// the id After, at most Limit (1–1000; 0 is the server's default, 100).
type ListQuery struct {
	Prefix string
	After  string
	Limit  int
}

// SessionPage is a page of sessions in id order; Next is the cursor of the
// next page, "" on the last.
type SessionPage struct {
	Sessions []SessionInfo `json:"sessions"`
	Next     string        `json:"next,omitempty"`
}

// Sessions lists one page of the cluster's sessions (GET /v1/sessions).
func (c *Client) Sessions(ctx context.Context, q ListQuery) (*SessionPage, error) {
	v := url.Values{}
	if q.Prefix != "" {
		v.Set("prefix", q.Prefix)
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/v1/sessions"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	resp, err := c.do(ctx, &request{method: http.MethodGet, path: path, safety: readOnly})
	if err != nil {
		return nil, err
	}
	p := &SessionPage{}
	return p, decode(resp, p)
}

// Alarm is a pending alarm of a session.
type Alarm struct {
	Name    string          `json:"name"`
	At      int64           `json:"at"` // unix ms
	Payload json.RawMessage `json:"payload,omitempty"`
}

// FiredAlarm is an alarm that fired, and whether the webhook took it.
type FiredAlarm struct {
	Name      string          `json:"name"`
	At        int64           `json:"at"`
	FiredAt   int64           `json:"firedAt"`
	Version   uint64          `json:"version"`
	Delivered bool            `json:"delivered"`
	Payload   json.RawMessage `json:"payload,omitempty"`
}

// Alarms is a session's pending alarms and most recent fires.
type Alarms struct {
	Alarms  []Alarm      `json:"alarms"`
	Fired   []FiredAlarm `json:"fired"`
	Version uint64       `json:"version"`
}

// Alarms lists session id's alarms.
func (c *Client) Alarms(ctx context.Context, id string) (*Alarms, error) {
	resp, err := c.read(ctx, id, "/alarms", nil)
	if err != nil {
		return nil, err
	}
	a := &Alarms{}
	return a, decode(resp, a)
}

// SetAlarm sets (or replaces) alarm name of session id, due at at (unix
// ms), with an optional payload.
func (c *Client) SetAlarm(ctx context.Context, id, name string, at int64, payload any, opts ...WriteOption) error {
	body := struct {
		At      int64 `json:"at"`
		Payload any   `json:"payload,omitempty"`
	}{at, payload}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	// Setting the same alarm twice leaves it as once: safe to repeat.
	_, err = c.write(ctx, http.MethodPut, id, "/alarms/"+url.PathEscape(name), b, idempotent, opts)
	return err
}

// DeleteAlarm deletes alarm name; ErrAlarmNotFound when there is none.
func (c *Client) DeleteAlarm(ctx context.Context, id, name string, opts ...WriteOption) error {
	_, err := c.write(ctx, http.MethodDelete, id, "/alarms/"+url.PathEscape(name), nil, unsafe, opts)
	return err
}

// Ready reports whether the first endpoint that answers is ready (every
// shard it holds has a leader).
func (c *Client) Ready(ctx context.Context) (bool, error) {
	_, err := c.attempt(ctx, &request{method: http.MethodGet, path: "/readyz", safety: readOnly}) // one try: not ready is an answer
	if err == nil {
		return true, nil
	}
	if e, ok := err.(*Error); ok && e.Status == http.StatusServiceUnavailable {
		return false, nil
	}
	return false, err
}
