package metrics

import (
	armon "github.com/armon/go-metrics"
	gometrics "github.com/hashicorp/go-metrics"
)

// raft-boltdb (the per-shard raft log, --log-store per-shard) reports
// through armon/go-metrics, the predecessor of hashicorp/go-metrics, which
// keeps a global of its own. armonSink forwards it into the same bridge, so
// raft-boltdb's store timings (sessiond_raft_boltdb_store_logs, its fsync)
// show too. The label types differ only in name.
type armonSink struct{ sink *renamingSink }

func installArmon(sink *renamingSink) error {
	conf := armon.DefaultConfig("")
	conf.EnableHostname = false
	conf.EnableRuntimeMetrics = false
	conf.TimerGranularity = gometricsTimerGranularity
	_, err := armon.NewGlobal(conf, armonSink{sink: sink})
	return err
}

func armonLabels(labels []armon.Label) []gometrics.Label {
	if len(labels) == 0 {
		return nil
	}
	out := make([]gometrics.Label, len(labels))
	for i, l := range labels {
		out[i] = gometrics.Label{Name: l.Name, Value: l.Value}
	}
	return out
}

func (a armonSink) SetGauge(key []string, val float32) { a.sink.SetGaugeWithLabels(key, val, nil) }

func (a armonSink) SetGaugeWithLabels(key []string, val float32, labels []armon.Label) {
	a.sink.SetGaugeWithLabels(key, val, armonLabels(labels))
}

func (a armonSink) EmitKey(key []string, val float32) {}

func (a armonSink) IncrCounter(key []string, val float32) {
	a.sink.IncrCounterWithLabels(key, val, nil)
}

func (a armonSink) IncrCounterWithLabels(key []string, val float32, labels []armon.Label) {
	a.sink.IncrCounterWithLabels(key, val, armonLabels(labels))
}

func (a armonSink) AddSample(key []string, val float32) { a.sink.AddSampleWithLabels(key, val, nil) }

func (a armonSink) AddSampleWithLabels(key []string, val float32, labels []armon.Label) {
	a.sink.AddSampleWithLabels(key, val, armonLabels(labels))
}
