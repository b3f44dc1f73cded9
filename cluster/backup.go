package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// The headers of the internal snapshot routes: the raft position a
// snapshot was taken at, and its SHA-256 (hex) on a restore.
const (
	SnapshotIndexHeader  = "X-Sessiond-Snapshot-Index"
	SnapshotTermHeader   = "X-Sessiond-Snapshot-Term"
	SnapshotSHA256Header = "X-Sessiond-Snapshot-Sha256"
)

// ClusterID is the cluster's id in hex, "" until the node has formed or
// joined a cluster.
func (n *Node) ClusterID() string {
	if !n.isFormed() {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return strconv.FormatUint(n.identity.ClusterID, 16)
}

// Backup snapshots the local replica of shard s; see shard.Shard.Backup.
func (n *Node) Backup(ctx context.Context, s uint32, c shard.Consistency) (*shard.BackupSnapshot, error) {
	return n.host.Backup(ctx, s, c)
}

// RestoreBackup restores a backup into shard s, which this node must lead;
// see shard.Shard.RestoreBackup.
func (n *Node) RestoreBackup(ctx context.Context, s uint32, index uint64, size int64, body io.Reader, want fsm.Summary) error {
	return n.host.RestoreBackup(ctx, s, index, size, body, want)
}

// FetchSnapshot asks another node that holds a replica of shard s (its
// leader first, as ListShard does) for a backup snapshot at consistency c
// over GET /internal/v1/shards/{s}/snapshot. The caller must close Body.
// Unlike the node's other peer calls it sets no overall timeout, since a
// snapshot can be large; ctx bounds it.
func (n *Node) FetchSnapshot(ctx context.Context, s uint32, c shard.Consistency) (*shard.BackupSnapshot, error) {
	addrs := n.shardHosts(s)
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no other live member holds a replica of shard %d", s)
	}
	path := fmt.Sprintf("%s%d/snapshot?consistency=%s", internalPrefix, s, c)
	var errs []error
	for _, addr := range addrs {
		resp, err := n.peers.stream(ctx, http.MethodGet, addr, path, nil, -1, nil)
		if err == nil {
			index, _ := strconv.ParseUint(resp.Header.Get(SnapshotIndexHeader), 10, 64)
			term, _ := strconv.ParseUint(resp.Header.Get(SnapshotTermHeader), 10, 64)
			if resp.ContentLength >= 0 && index > 0 {
				return &shard.BackupSnapshot{Index: index, Term: term, Size: resp.ContentLength, Body: resp.Body}, nil
			}
			resp.Body.Close()
			err = errors.New("the answer names no snapshot index or length")
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// PushSnapshot restores a backup snapshot of shard s, size bytes with the
// given SHA-256, into the shard's leader on another node over POST
// /internal/v1/shards/{s}/restore. A node that does not lead the shard
// (any more) answers 503 no_leader and changes nothing; so does this call
// when no leader is known or this node leads the shard by now, which
// leaves the caller to try again with the leader it knows then.
func (n *Node) PushSnapshot(ctx context.Context, s uint32, index uint64, size int64, sum string, body io.Reader) error {
	id, addr, local := n.Leader(s)
	if local || id == "" || addr == "" {
		return &shard.NotLeaderError{Shard: s}
	}
	path := fmt.Sprintf("%s%d/restore?index=%d", internalPrefix, s, index)
	resp, err := n.peers.stream(ctx, http.MethodPost, addr, path, body, size, http.Header{SnapshotSHA256Header: {sum}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// stream makes a call whose bodies may be large: body (of length size, -1
// for none) is sent as it is read, and the answer's body is left to the
// caller, who must close it. A non-2xx answer is a *client.Error.
func (p *peerClient) stream(ctx context.Context, method, httpAddr, path string, body io.Reader, size int64, h http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, p.scheme+"://"+httpAddr+path, body)
	if err != nil {
		return nil, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	for k, v := range h {
		req.Header[k] = v
	}
	p.authorize(req)
	c := *p.http
	c.Timeout = 0
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, readPeerError(resp, p.scheme+"://"+httpAddr)
	}
	return resp, nil
}

// PeerErrorOf unwraps the error envelope another node answered a call
// with: its status, code and message.
func PeerErrorOf(err error) (status int, code, msg string, ok bool) {
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status == 0 {
		return 0, "", "", false
	}
	return ce.Status, string(ce.Code), ce.Message, true
}
