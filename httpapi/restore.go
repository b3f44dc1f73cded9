package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/backup"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/shard"
)

// restoreResult is POST /v1/restore's answer.
type restoreResult struct {
	Shards          int       `json:"shards"`
	Bytes           int64     `json:"bytes"`
	BackupClusterID string    `json:"backupClusterId,omitempty"`
	BackupStartedAt time.Time `json:"backupStartedAt"`
}

// restore restores an archive into this cluster (POST /v1/restore, the
// archive as the body). It reads and verifies the whole archive first,
// then checks that the cluster has the archive's shard count and holds no
// session, and only then replaces each shard's state through its leader.
// Any refusal before that changes nothing. A failure while shards are
// being restored leaves the shards before it restored: the message names
// the shard, and since a restored shard is no longer empty, the way on is
// a new cluster.
func (s *Server) restore(c echo.Context) error {
	lb, err := s.localBackups()
	if err != nil {
		return err
	}
	a, err := backup.Read(c.Request().Body, s.scratchDir())
	if err != nil {
		return archiveError(err)
	}
	defer a.Remove()
	m := a.Manifest
	if m.ShardCount != s.store.ShardCount() {
		return errorf(http.StatusConflict, CodeShardCountMismatch,
			"the backup holds %d shards and this cluster has %d; restore into a cluster started with --shards %d",
			m.ShardCount, s.store.ShardCount(), m.ShardCount)
	}
	ctx := c.Request().Context()
	if err := s.checkEmpty(ctx); err != nil {
		return err
	}
	for _, sh := range m.Shards {
		if err := s.restoreOne(ctx, lb, a, sh); err != nil {
			return err
		}
	}
	s.logger.Info("backup restored", "shards", m.ShardCount, "bytes", m.Bytes(), "backup_started_at", m.StartedAt)
	return c.JSON(http.StatusOK, restoreResult{Shards: m.ShardCount, Bytes: m.Bytes(),
		BackupClusterID: m.ClusterID, BackupStartedAt: m.StartedAt})
}

// archiveError answers an archive that could not be read.
func archiveError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("keeping the archive while it is verified: %w", err) // a 500: the node's disk, not the input
	}
	if !errors.Is(err, backup.ErrInvalid) {
		err = fmt.Errorf("reading the archive: %w", err)
	}
	return errorf(http.StatusBadRequest, CodeInvalidBackup, "%v", err)
}

// checkEmpty refuses a cluster that holds any session: a backup replaces
// a shard's state, and merging is not what a restore does.
func (s *Server) checkEmpty(ctx context.Context) error {
	for sh := 0; sh < s.store.ShardCount(); sh++ {
		page, err := s.listShard(ctx, uint32(sh), listQuery{limit: 1})
		if err != nil {
			return err
		}
		if len(page.Sessions) > 0 {
			return errorf(http.StatusConflict, CodeClusterNotEmpty,
				"shard %d holds sessions (%s, …); a backup is restored only into a new, empty cluster", sh, page.Sessions[0].ID)
		}
	}
	return nil
}

// restoreOne restores one shard through its leader: this node's replica
// when it leads, else the leader's node.
func (s *Server) restoreOne(ctx context.Context, lb LocalBackups, a *backup.Archive, sh backup.Shard) error {
	f, err := a.Open(sh.Shard)
	if err != nil {
		return err
	}
	defer f.Close()
	cl := s.cfg.Cluster
	if cl != nil {
		if _, _, local := cl.Leader(sh.Shard); !local {
			pb, ok := s.peerBackups()
			if !ok {
				return unavailable(CodeShardUnavailable, fmt.Sprintf("shard %d is led by another node", sh.Shard))
			}
			err = pb.PushSnapshot(ctx, sh.Shard, sh.Index, sh.Size, sh.SHA256, f)
			return restoreError(sh.Shard, err)
		}
	}
	return restoreError(sh.Shard, lb.RestoreBackup(ctx, sh.Shard, sh.Index, sh.Size, f))
}

func restoreError(sh uint32, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, shard.ErrNotEmpty) {
		return errorf(http.StatusConflict, CodeClusterNotEmpty, "shard %d: %v", sh, err)
	}
	return backupError(sh, err)
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// restoreShard restores one shard's snapshot on its leader (a node's
// PushSnapshot): the body, of Content-Length bytes with the SHA-256 in
// X-Sessiond-Snapshot-Sha256, taken at raft index ?index.
func (s *Server) restoreShard(c echo.Context) error {
	sh, err := s.shardParam(c)
	if err != nil {
		return err
	}
	r := c.Request()
	index, err := strconv.ParseUint(c.QueryParam("index"), 10, 64)
	sum := r.Header.Get(cluster.SnapshotSHA256Header)
	if err != nil || !sha256Hex.MatchString(sum) || r.ContentLength < 0 {
		return errorf(http.StatusBadRequest, CodeInvalidBackup,
			"a shard restore takes ?index, the body's length and its SHA-256 in %s", cluster.SnapshotSHA256Header)
	}
	lb, err := s.localBackups()
	if err != nil {
		return err
	}
	return s.routeToLeader(c, sh, false, func(c echo.Context) error {
		path, err := backup.SpoolSnapshot(r.Body, r.ContentLength, sum, index, s.scratchDir())
		if err != nil {
			return archiveError(err)
		}
		defer os.Remove(path)
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := lb.RestoreBackup(r.Context(), sh, index, r.ContentLength, f); err != nil {
			return restoreError(sh, err)
		}
		return c.NoContent(http.StatusNoContent)
	})
}
