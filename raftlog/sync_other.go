//go:build !linux

package raftlog

import (
	"os"
	"path/filepath"
)

func fdatasync(f *os.File) error { return f.Sync() }

// lockDir only opens dir/LOCK: other systems rely on one process per data
// directory.
func lockDir(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
}
