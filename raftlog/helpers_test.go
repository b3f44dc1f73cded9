package raftlog

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/hashicorp/raft"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openLog(t *testing.T, dir string, opts Options) *Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// entry builds a recognisable entry: its data names shard, index and term.
func entry(shard uint32, index, term uint64) *raft.Log {
	return &raft.Log{
		Index: index, Term: term, Type: raft.LogCommand,
		Data: []byte(fmt.Sprintf("shard %d index %d term %d", shard, index, term)),
	}
}

func entries(shard uint32, from, to, term uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, entry(shard, i, term))
	}
	return out
}

// sameEntries compares two logs the way raft would read them.
func sameEntries(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

// requireRange checks that shard's log holds exactly first..last and that
// every entry reads back as want(index).
func requireRange(t *testing.T, s *ShardLog, first, last uint64, want func(uint64) *raft.Log) {
	t.Helper()
	f, _ := s.FirstIndex()
	l, _ := s.LastIndex()
	if f != first || l != last {
		t.Fatalf("shard %d: range %d..%d, want %d..%d", s.id, f, l, first, last)
	}
	if first == 0 {
		return
	}
	for i := first; i <= last; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("shard %d: get %d: %v", s.id, i, err)
		}
		if w := want(i); !sameEntries(&got, w) {
			t.Fatalf("shard %d: entry %d = %+v, want %+v", s.id, i, got, *w)
		}
	}
	var x raft.Log
	if err := s.GetLog(last+1, &x); err != raft.ErrLogNotFound {
		t.Fatalf("shard %d: get %d past the end: %v, want ErrLogNotFound", s.id, last+1, err)
	}
}
