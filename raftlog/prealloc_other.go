//go:build !linux

package raftlog

import "os"

// preallocate does nothing where fallocate is not available: the file grows
// as it is written.
func preallocate(*os.File, int64) bool { return false }

// roomIn is false where free space is not checked: the log takes no space
// ahead of need (no spare segment either).
func roomIn(string, int64) bool { return false }
