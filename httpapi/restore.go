package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/backup"
	"github.com/sessiond/sessiond/cluster"
	"github.com/sessiond/sessiond/fsm"
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
		var page cluster.SessionPage
		err := whileUnavailable(ctx, func() (err error) {
			page, err = s.listShard(ctx, uint32(sh), listQuery{limit: 1})
			return err
		})
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

// restoreLeaderWait bounds how long a restore waits for a shard's
// leadership to settle (a new cluster's balancer moves leaders around).
const restoreLeaderWait = 30 * time.Second

// restoreOne restores one shard through its leader: this node's replica
// when it leads, else the leader's node. A replica that turns out not to
// lead, or loses leadership while restoring, makes the shard be tried
// again, from the start of its snapshot, with the leader known then.
func (s *Server) restoreOne(ctx context.Context, lb LocalBackups, a *backup.Archive, sh backup.Shard) error {
	f, err := a.Open(sh.Shard)
	if err != nil {
		return err
	}
	defer f.Close()
	deadline := time.Now().Add(restoreLeaderWait)
	for {
		err := s.restoreAt(ctx, lb, f, sh, a.Summary(sh.Shard))
		if err == nil || !retryRestore(err) || time.Now().After(deadline) {
			return restoreError(sh.Shard, err)
		}
		select {
		case <-ctx.Done():
			return restoreError(sh.Shard, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}
}

// restoreAt makes one attempt at restoring a shard through the leader
// this node knows.
func (s *Server) restoreAt(ctx context.Context, lb LocalBackups, f io.Reader, sh backup.Shard, want fsm.Summary) error {
	if cl := s.cfg.Cluster; cl != nil {
		if _, _, local := cl.Leader(sh.Shard); !local {
			pb, ok := s.peerBackups()
			if !ok {
				return unavailable(CodeShardUnavailable, fmt.Sprintf("shard %d is led by another node", sh.Shard))
			}
			// Hide the file's Close from the HTTP client, which closes a
			// request body it is given: a retry reads the file again.
			return pb.PushSnapshot(ctx, sh.Shard, sh.Index, sh.Size, sh.SHA256, struct{ io.Reader }{f})
		}
	}
	return lb.RestoreBackup(ctx, sh.Shard, sh.Index, sh.Size, f, want)
}

// retryRestore reports whether a restore attempt may be made again: the
// replica asked did not lead the shard (or none was known), which changed
// nothing, or it lost leadership while restoring, after which a retry
// either restores or finds the restore done (see shard.RestoreBackup).
func retryRestore(err error) bool {
	var nle *shard.NotLeaderError
	if errors.As(err, &nle) || errors.Is(err, shard.ErrNotReady) || errors.Is(err, shard.ErrOutcomeUnknown) {
		return true
	}
	_, code, _, ok := cluster.PeerErrorOf(err)
	return ok && (code == CodeNoLeader || code == CodeNotReady || code == CodeOutcomeUnknown)
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
// X-Sessiond-Snapshot-Sha256, taken at raft index ?index. A node that does
// not lead the shard answers 503 no_leader rather than forwarding, so the
// sender retries with the leader it knows then instead of waiting on a
// proxy for a restore that may take long.
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
	path, summary, err := backup.SpoolSnapshot(r.Body, r.ContentLength, sum, index, s.scratchDir())
	if err != nil {
		return archiveError(err)
	}
	defer os.Remove(path)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lb.RestoreBackup(r.Context(), sh, index, r.ContentLength, f, summary); err != nil {
		return restoreError(sh, err)
	}
	return c.NoContent(http.StatusNoContent)
}
