package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/backup"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// Error codes of backup and restore.
const (
	CodeInvalidBackup      = "invalid_backup"
	CodeShardCountMismatch = "shard_count_mismatch"
	CodeClusterNotEmpty    = "cluster_not_empty"
)

// ShardCountHeader on a backup names the number of shards it will hold.
const ShardCountHeader = "X-Sessiond-Shard-Count"

// LocalBackups snapshots and restores the node's own replicas; the Store
// provides it when it implements it, as *cluster.Node and *shard.Host do.
// Without it the backup routes answer 404.
type LocalBackups interface {
	Backup(ctx context.Context, s uint32, c shard.Consistency) (*shard.BackupSnapshot, error)
	RestoreBackup(ctx context.Context, s uint32, index uint64, size int64, body io.Reader, want fsm.Summary) error
}

// PeerBackups reaches the replicas of other nodes; the Config's Cluster
// provides it when it implements it, as *cluster.Node does. Without it a
// shard with no local replica (or led elsewhere, on a restore) fails the
// request with shard_unavailable.
type PeerBackups interface {
	ClusterID() string
	FetchSnapshot(ctx context.Context, s uint32, c shard.Consistency) (*shard.BackupSnapshot, error)
	PushSnapshot(ctx context.Context, s uint32, index uint64, size int64, sum string, body io.Reader) error
}

func (s *Server) backupRoutes() {
	e := s.echo
	e.GET("/v1/backup", s.backup, longLived)
	e.POST("/v1/restore", s.restore, longLived)
	e.GET("/internal/v1/shards/:shard/snapshot", s.shardSnapshot, longLived)
	e.POST("/internal/v1/shards/:shard/restore", s.restoreShard, longLived)
}

func (s *Server) localBackups() (LocalBackups, error) {
	lb, ok := s.store.(LocalBackups)
	if !ok {
		return nil, errorf(http.StatusNotFound, CodeNotFound, "this node does not serve backups")
	}
	return lb, nil
}

func (s *Server) peerBackups() (PeerBackups, bool) {
	pb, ok := s.cfg.Cluster.(PeerBackups)
	return pb, ok
}

// backupRequest reads a backup's ?consistency: linearizable (the default)
// or stale, which backs up a shard that has lost its quorum.
func (s *Server) backupRequest(c echo.Context) (LocalBackups, shard.Consistency, error) {
	level, err := shard.ParseConsistency(c.QueryParam("consistency"))
	if err != nil || level == shard.Leader {
		return nil, 0, errorf(http.StatusBadRequest, CodeInvalidConsistency, "consistency must be linearizable or stale")
	}
	lb, err := s.localBackups()
	return lb, level, err
}

// backup streams an archive of every shard (GET /v1/backup). Each shard is
// snapshotted in turn at consistency level: at linearizable on a replica
// that has applied a read index taken after the request arrived, so the
// archive holds every write acknowledged before the request. The first
// snapshot is taken before the answer starts, so a cluster that cannot
// back up answers with an error; a failure later cuts the stream, which
// leaves an archive without a manifest that every reader refuses.
func (s *Server) backup(c echo.Context) error {
	started := time.Now().UTC()
	lb, level, err := s.backupRequest(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	n := s.store.ShardCount()
	snap, err := s.openSnapshot(ctx, lb, 0, level)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "application/x-tar")
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="sessiond-backup-%s.tar"`, started.Format("20060102T150405Z")))
	h.Set(ShardCountHeader, strconv.Itoa(n))
	c.Response().WriteHeader(http.StatusOK)
	w := backup.NewWriter(c.Response())
	for sh := 0; sh < n; sh++ {
		if sh > 0 {
			if snap, err = s.openSnapshot(ctx, lb, uint32(sh), level); err != nil {
				s.abortBackup(sh, err)
			}
		}
		err := w.AddShard(uint32(sh), snap.Index, snap.Term, snap.Size, snap.Body)
		snap.Body.Close()
		if err != nil {
			s.abortBackup(sh, err)
		}
	}
	m := backup.Manifest{Node: s.store.NodeID(), ShardCount: n, Consistency: level.String(),
		StartedAt: started, FinishedAt: time.Now().UTC()}
	if pb, ok := s.peerBackups(); ok {
		m.ClusterID = pb.ClusterID()
	}
	if err := w.Close(m); err != nil {
		s.abortBackup(n, err)
	}
	s.logger.Info("backup streamed", "shards", n, "consistency", level.String(), "took", time.Since(started))
	return nil
}

// abortBackup cuts a backup's stream once it has begun: net/http closes the
// connection without ending the body, so the client sees it incomplete.
func (s *Server) abortBackup(sh int, err error) {
	s.logger.Warn("backup cut short", "shard", sh, "err", err)
	panic(http.ErrAbortHandler)
}

// unavailableFor bounds how long a backup or restore waits for a shard
// that answers 503 (no leader during an election, a new leader not ready
// yet): a new cluster's balancer moves leaders around just after it forms.
const unavailableFor = 10 * time.Second

// whileUnavailable calls f until it returns anything but a 503, ctx ends
// or unavailableFor has passed, and returns its last error.
func whileUnavailable(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(unavailableFor)
	for {
		err := f()
		var ae *apiError
		if err == nil || !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// openSnapshot snapshots shard sh, waiting out a shard that is briefly
// unavailable.
func (s *Server) openSnapshot(ctx context.Context, lb LocalBackups, sh uint32, level shard.Consistency) (snap *shard.BackupSnapshot, err error) {
	err = whileUnavailable(ctx, func() error {
		snap, err = s.openSnapshotOnce(ctx, lb, sh, level)
		return err
	})
	return snap, err
}

// openSnapshotOnce snapshots shard sh on the local replica when this node
// holds one that can serve the level, else on a node that does.
func (s *Server) openSnapshotOnce(ctx context.Context, lb LocalBackups, sh uint32, level shard.Consistency) (*shard.BackupSnapshot, error) {
	cl := s.cfg.Cluster
	if cl == nil || cl.HasReplica(sh) {
		snap, err := lb.Backup(ctx, sh, level)
		if err == nil {
			return snap, nil
		}
		var nle *shard.NotLeaderError
		var nh *shard.NotHostedError
		if cl == nil || !(errors.As(err, &nle) || errors.As(err, &nh)) {
			return nil, backupError(sh, err)
		}
	}
	pb, ok := s.peerBackups()
	if !ok {
		return nil, unavailable(CodeShardUnavailable, fmt.Sprintf("shard %d has no replica on this node to back up", sh))
	}
	snap, err := pb.FetchSnapshot(ctx, sh, level)
	if err != nil {
		return nil, backupError(sh, err)
	}
	return snap, nil
}

// backupError is the answer to a shard that could not be backed up or
// restored.
func backupError(sh uint32, err error) error {
	if se := storeError(err); se != nil {
		se.Message = aboutShard(sh, se.Message)
		return se
	}
	if status, code, msg, ok := cluster.PeerErrorOf(err); ok && code != "" {
		ae := &apiError{Status: status, Code: code, Message: aboutShard(sh, msg)}
		if status == http.StatusServiceUnavailable {
			ae.RetryAfter = 1
		}
		return ae
	}
	return unavailable(CodeShardUnavailable, aboutShard(sh, err.Error()))
}

// aboutShard names shard sh in msg unless msg names it already.
func aboutShard(sh uint32, msg string) string {
	prefix := fmt.Sprintf("shard %d: ", sh)
	if strings.HasPrefix(msg, prefix) {
		return msg
	}
	return prefix + msg
}

// shardSnapshot answers a node's FetchSnapshot with this node's replica.
func (s *Server) shardSnapshot(c echo.Context) error {
	sh, err := s.shardParam(c)
	if err != nil {
		return err
	}
	lb, level, err := s.backupRequest(c)
	if err != nil {
		return err
	}
	snap, err := lb.Backup(c.Request().Context(), sh, level)
	if err != nil {
		return backupError(sh, err)
	}
	defer snap.Body.Close()
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "application/octet-stream")
	h.Set(echo.HeaderContentLength, strconv.FormatInt(snap.Size, 10))
	h.Set(cluster.SnapshotIndexHeader, strconv.FormatUint(snap.Index, 10))
	h.Set(cluster.SnapshotTermHeader, strconv.FormatUint(snap.Term, 10))
	c.Response().WriteHeader(http.StatusOK)
	if _, err := io.Copy(c.Response(), snap.Body); err != nil {
		s.abortBackup(int(sh), err)
	}
	return nil
}

// scratchDir is where restores keep the snapshots they verify.
func (s *Server) scratchDir() string {
	if s.cfg.ScratchDir != "" {
		return s.cfg.ScratchDir
	}
	return os.TempDir()
}
