package shard_test

import (
	"testing"
	"time"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/shard"
)

// The defaults a node runs with derive from DefaultTuning, and a zero
// Tuning is DefaultTuning.
func TestDefaultTuningDerivesTheDefaults(t *testing.T) {
	for _, tu := range []shard.Tuning{shard.DefaultTuning, {}} {
		if got := tu.Timing(); got != shard.DefaultTiming {
			t.Errorf("%+v: Timing() = %+v, want DefaultTiming %+v", tu, got, shard.DefaultTiming)
		}
		if got := tu.Snapshots(); got != shard.DefaultSnapshots {
			t.Errorf("%+v: Snapshots() = %+v, want DefaultSnapshots %+v", tu, got, shard.DefaultSnapshots)
		}
		if got := tu.WithDefaults().Limits; got != fsm.DefaultLimits {
			t.Errorf("%+v: limits %+v, want fsm.DefaultLimits", tu, got)
		}
	}
}

// The lease is 0.8 of the heartbeat and the commit interval two of it; a snapshot leaves a quarter more
// entries than its threshold behind, 64 at least; what was not chosen
// keeps its default.
func TestTuningDerivesRaftSettings(t *testing.T) {
	tu := shard.Tuning{Heartbeat: 500 * time.Millisecond, SnapshotThreshold: 1000, SnapshotInterval: 5 * time.Second, LogStore: shard.LogStorePerShard}
	wantTiming := shard.DefaultTiming
	wantTiming.Heartbeat, wantTiming.LeaderLease, wantTiming.Commit = 500*time.Millisecond, 400*time.Millisecond, time.Second
	if got := tu.Timing(); got != wantTiming {
		t.Errorf("Timing() = %+v, want %+v", got, wantTiming)
	}
	wantSnaps := shard.DefaultSnapshots
	wantSnaps.Threshold, wantSnaps.Interval, wantSnaps.TrailingLogs = 1000, 5*time.Second, 1250
	if got := tu.Snapshots(); got != wantSnaps {
		t.Errorf("Snapshots() = %+v, want %+v", got, wantSnaps)
	}
	if got := (shard.Tuning{SnapshotThreshold: 16}).Snapshots().TrailingLogs; got != 64 {
		t.Errorf("trailing logs for a threshold of 16 = %d, want 64", got)
	}
	if got := tu.WithDefaults(); got.LogStore != shard.LogStorePerShard || got.Heartbeat != tu.Heartbeat {
		t.Errorf("WithDefaults() = %+v changed what was chosen", got)
	}
	if got := (shard.Tuning{}).WithDefaults().LogStore; got != "" {
		t.Errorf("an empty log store became %q; it must stay empty to keep the data directory's", got)
	}
}
