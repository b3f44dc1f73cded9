package raftlog

import (
	"os"
	"syscall"
)

// preallocate gives f size bytes of disk, reading as zeros. It is best
// effort: a file system without fallocate, or a disk without the room,
// leaves the file to grow as it is written.
func preallocate(f *os.File, size int64) {
	_ = syscall.Fallocate(int(f.Fd()), 0, 0, size)
}
