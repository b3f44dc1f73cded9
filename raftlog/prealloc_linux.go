package raftlog

import (
	"os"
	"path/filepath"
	"syscall"
)

// preallocate gives f size bytes of disk, reading as zeros. It is best
// effort, and modest: only when the volume has several times size free, so
// that a log near a full disk never takes the last of the space the node's
// snapshots need, and a call that fails gives back what it allocated
// (ext4 keeps a failed fallocate's partial allocation). Without it the file
// grows as it is written. It reports whether the space was given.
func preallocate(f *os.File, size int64) bool {
	if !roomIn(filepath.Dir(f.Name()), size) {
		return false
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		_ = f.Truncate(0)
		return false
	}
	return true
}

// roomIn reports whether dir's volume has several times size free: space
// the log may take ahead of need without crowding the node's snapshots.
func roomIn(dir string, size int64) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && int64(st.Bavail)*st.Bsize >= 4*size
}
