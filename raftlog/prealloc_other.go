//go:build !linux

package raftlog

import "os"

// preallocate does nothing where fallocate is not available: the file grows
// as it is written.
func preallocate(*os.File, int64) {}
