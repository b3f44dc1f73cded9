//go:build linux

package raftlog

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// What a flush costs in a preallocated segment and in one written full of
// zeros ahead of time (spare.go): each op writes 3 000 bytes (a group
// commit of a few entries) after the last and fdatasyncs, as the writer
// does. Besides ns/op, the benchmarks report the process CPU per op
// (cpu-µs/op), most of it the kernel's.
//
//	go test -run='^$' -bench=SyncInto -benchtime=2000x ./raftlog
func BenchmarkSyncIntoPreallocatedSegment(b *testing.B) {
	benchSyncInto(b, func(f *os.File, size int64) { preallocate(f, size) })
}

func BenchmarkSyncIntoZeroFilledSegment(b *testing.B) {
	benchSyncInto(b, func(f *os.File, size int64) {
		s := &spareSegment{size: size, stop: make(chan struct{})}
		if err := s.write(f.Name()); err != nil {
			b.Fatal(err)
		}
	})
}

func benchSyncInto(b *testing.B, prepare func(f *os.File, size int64)) {
	const write = 3000
	size := int64(b.N+1) * write
	path := filepath.Join(b.TempDir(), "segment")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	prepare(f, size)
	buf := make([]byte, write)
	cpu0 := processCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.WriteAt(buf, int64(i)*write); err != nil {
			b.Fatal(err)
		}
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
