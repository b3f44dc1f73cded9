package metrics

import (
	armon "github.com/armon/go-metrics"
)

// raft-boltdb (the per-shard raft log, --log-store per-shard) reports
// through go-metrics/compat, which by default is armon/go-metrics, the
// predecessor of hashicorp/go-metrics with a global of its own. armonSink
// feeds it to the same sink, so raft-boltdb's store timings
// (sessiond_raft_boltdb_store_logs, its fsync) show too. The label types
// are identical but for their name, so the sink takes either without
// copying.
type armonSink struct{ s *sink }

func installArmon(s *sink) error {
	conf := armon.DefaultConfig("")
	conf.EnableHostname = false
	conf.EnableRuntimeMetrics = false
	conf.TimerGranularity = gometricsTimerGranularity
	_, err := armon.NewGlobal(conf, armonSink{s: s})
	return err
}

func (a armonSink) SetGauge(key []string, val float32) { a.SetGaugeWithLabels(key, val, nil) }

func (a armonSink) SetGaugeWithLabels(key []string, val float32, labels []armon.Label) {
	setGauge(a.s, key, float64(val), labels)
}

func (a armonSink) EmitKey(key []string, val float32) {}

func (a armonSink) IncrCounter(key []string, val float32) { a.IncrCounterWithLabels(key, val, nil) }

func (a armonSink) IncrCounterWithLabels(key []string, val float32, labels []armon.Label) {
	incrCounter(a.s, key, val, labels)
}

func (a armonSink) AddSample(key []string, val float32) { a.AddSampleWithLabels(key, val, nil) }

func (a armonSink) AddSampleWithLabels(key []string, val float32, labels []armon.Label) {
	addSample(a.s, key, val, labels)
}
