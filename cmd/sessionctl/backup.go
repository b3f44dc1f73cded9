package main

import (
	"archive/tar"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/backup"
	"github.com/sessiond/sessiond/client"
)

// cmdBackup is "backup save FILE" and "backup restore FILE".
func cmdBackup(a *app, fs *flag.FlagSet, args []string) error {
	consistency := fs.String("consistency", "linearizable",
		"save: linearizable (every write acknowledged before the backup) or stale (each shard as a replica has it, for a shard that lost its quorum)")
	pos, c, err := a.setup(fs, args, 2, 2, "ACTION", "FILE")
	if err != nil {
		return err
	}
	switch pos[0] {
	case "save":
		if *consistency != "linearizable" && *consistency != "stale" {
			return usagef("backup", "--consistency must be linearizable or stale, not %q", *consistency)
		}
		return a.backupSave(c, pos[1], *consistency)
	case "restore":
		return a.backupRestore(c, pos[1])
	}
	return usagef("backup", "the action is save or restore, not %q", pos[0])
}

// backupSave streams GET /v1/backup into FILE. It writes FILE.partial and
// renames it to FILE only once the archive verifies, so FILE is either a
// complete backup or untouched.
func (a *app) backupSave(c *client.Client, file, consistency string) error {
	// No timeout but the process's: an archive can be large.
	resp, err := c.Backup(context.Background(), consistency)
	if err != nil {
		return err
	}
	defer resp.Close()
	addr := resp.Endpoint
	shards, _ := strconv.Atoi(resp.Header.Get("X-Sessiond-Shard-Count"))
	tmp := file + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // a no-op once renamed
	bar := a.newProgress(fmt.Sprintf("backup from %s", addr))
	err = copyArchive(f, resp, func(done int, bytes int64) {
		bar.update(fmt.Sprintf("%d/%d shards", done, shards), done, shards, bytes)
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	bar.end()
	if err != nil {
		return fmt.Errorf("the backup from %s broke off: %w", addr, err)
	}
	m, err := verifyFile(tmp)
	if err != nil {
		return fmt.Errorf("the backup from %s does not verify: %w", addr, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	holds := "every write acknowledged before " + m.StartedAt.Format(time.RFC3339)
	if m.Consistency == "stale" {
		holds = "each shard as the replica that took it had it"
	}
	fmt.Fprintf(a.stdout, "saved %s: %d shards, %s, %s\n", file, m.ShardCount, byteSize(m.Bytes()), holds)
	return nil
}

// copyArchive copies a tar stream from r to w, calling progress each time
// a snapshot has arrived whole with the number of them and the bytes so far.
func copyArchive(w io.Writer, r io.Reader, progress func(shards int, bytes int64)) error {
	counted := &byteCounter{}
	tee := io.TeeReader(r, io.MultiWriter(w, counted))
	tr := tar.NewReader(tee)
	done := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return err
		}
		if hdr.Name != backup.ManifestName {
			done++
		}
		progress(done, counted.n)
	}
	_, err := io.Copy(io.Discard, tee) // the end-of-archive blocks
	progress(done, counted.n)
	return err
}

// backupRestore checks FILE and the cluster, then POSTs FILE to
// /v1/restore. The node checks both again and changes nothing when either
// is wrong; checking here first says so before the upload.
func (a *app) backupRestore(c *client.Client, file string) error {
	m, err := verifyFile(file)
	if err != nil {
		return fmt.Errorf("%s is not a backup this cluster can restore: %w", file, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	view, err := c.Cluster(ctx)
	if err != nil {
		return err
	}
	if view.ShardCount != m.ShardCount {
		return fmt.Errorf("the backup holds %d shards and the cluster has %d; restore into a cluster started with --shards %d",
			m.ShardCount, view.ShardCount, m.ShardCount)
	}
	page, err := c.Sessions(ctx, client.ListQuery{Limit: 1})
	if err != nil {
		return err
	}
	if len(page.Sessions) > 0 {
		return fmt.Errorf("the cluster holds sessions (%s, …); a backup is restored only into a new, empty cluster", page.Sessions[0].ID)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	bar := a.newProgress("restore")
	body := &progressReader{r: f, step: func(n int64) { bar.update("uploaded", int(n), int(st.Size()), n) }}
	addr, err := c.Restore(context.Background(), body, st.Size())
	bar.end()
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "restored %s through %s: %d shards, %s, the backup of cluster %s begun %s\n",
		filepath.Base(file), addr, m.ShardCount, byteSize(m.Bytes()), m.ClusterID, m.StartedAt.Format(time.RFC3339))
	return nil
}

// verifyFile reads a whole archive and checks its manifest, sizes,
// checksums and snapshots.
func verifyFile(file string) (backup.Manifest, error) {
	f, err := os.Open(file)
	if err != nil {
		return backup.Manifest{}, err
	}
	defer f.Close()
	a, err := backup.Read(f, "")
	if err != nil {
		return backup.Manifest{}, err
	}
	return a.Manifest, nil
}

type byteCounter struct{ n int64 }

func (c *byteCounter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// progressReader reports the bytes read so far after every read.
type progressReader struct {
	r    io.Reader
	n    int64
	step func(n int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.step(p.n)
	return n, err
}

// progress draws a progress bar on stderr: in place on a terminal, else
// one line each time the count changes.
type progress struct {
	a     *app
	label string
	last  string
}

func (a *app) newProgress(label string) *progress { return &progress{a: a, label: label} }

func (p *progress) update(what string, done, total int, bytes int64) {
	const width = 30
	fill := 0
	if total > 0 {
		fill = min(width, done*width/total)
	}
	line := fmt.Sprintf("%s [%s%s] %s, %s", p.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), what, byteSize(bytes))
	if p.a.tty {
		fmt.Fprintf(p.a.stderr, "\r%s", line)
	} else if bar := line[:strings.Index(line, "]")]; bar != p.last {
		fmt.Fprintln(p.a.stderr, line)
		p.last = bar
	}
}

func (p *progress) end() {
	if p.a.tty {
		fmt.Fprintln(p.a.stderr)
	}
}
