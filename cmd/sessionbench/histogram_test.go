package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// exactPercentile is the nearest-rank percentile of sorted samples, the
// definition Histogram.Percentile approximates.
func exactPercentile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

var testQuantiles = []float64{0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100}

func checkAccuracy(t *testing.T, name string, h *Histogram, samples []int64) {
	t.Helper()
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	for _, q := range testQuantiles {
		want := exactPercentile(sorted, q)
		got := h.Percentile(q)
		diff := math.Abs(float64(got - want))
		// 1% is the brief; the design bound is 1/(2·subCount) ≈ 0.2%.
		if diff > 0.01*float64(want) || diff > float64(want)/(2*subCount)+0.5 {
			t.Errorf("%s: p%v = %d, exact %d (rel err %.4f%%)", name, q, got, want, 100*diff/float64(want))
		}
	}
	if h.Min() != sorted[0] || h.Max() != sorted[len(sorted)-1] {
		t.Errorf("%s: min/max = %d/%d, want %d/%d", name, h.Min(), h.Max(), sorted[0], sorted[len(sorted)-1])
	}
	if h.Count() != uint64(len(samples)) {
		t.Errorf("%s: count %d, want %d", name, h.Count(), len(samples))
	}
}

func TestHistogramAccuracyRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gens := map[string]func() int64{
		"uniform-small": func() int64 { return r.Int64N(1000) },
		"uniform-wide":  func() int64 { return 1 + r.Int64N(10_000_000) },
		// Latency-like: log-normal around 2ms with a heavy tail.
		"lognormal": func() int64 { return int64(math.Exp(math.Log(2000) + 1.2*r.NormFloat64())) },
		"exponential": func() int64 {
			return int64(500 * r.ExpFloat64())
		},
		// Bimodal: fast hits and slow fsyncs, the shape that averages hide.
		"bimodal": func() int64 {
			if r.IntN(100) < 97 {
				return 300 + r.Int64N(200)
			}
			return 40_000 + r.Int64N(60_000)
		},
		"huge": func() int64 { return r.Int64N(math.MaxInt64) },
	}
	for name, gen := range gens {
		for _, n := range []int{1, 7, 1000, 100_000} {
			h := NewHistogram()
			samples := make([]int64, n)
			for i := range samples {
				samples[i] = gen()
				h.Record(samples[i])
			}
			checkAccuracy(t, name, h, samples)
		}
	}
}

func TestHistogramBucketsContiguous(t *testing.T) {
	// Every value maps into a bucket whose bounds contain it, and consecutive
	// buckets tile the value space without gaps.
	prevEnd := uint64(0)
	for i := 0; i < bucketIndex(math.MaxUint64)+1; i++ {
		lower, width := bucketBounds(i)
		if lower != prevEnd {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lower, prevEnd)
		}
		if bucketIndex(lower) != i || bucketIndex(lower+width-1) != i {
			t.Fatalf("bucket %d [%d,+%d) does not map back to itself", i, lower, width)
		}
		if lower >= 2*subCount && float64(width)/float64(lower) > 1.0/subCount {
			t.Fatalf("bucket %d relative width %v", i, float64(width)/float64(lower))
		}
		prevEnd = lower + width
	}
	if prevEnd != 0 { // wrapped exactly past MaxUint64
		t.Fatalf("buckets end at %d, want wrap to 0", prevEnd)
	}
}

func TestHistogramMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	all := NewHistogram()
	parts := make([]*Histogram, 8)
	var samples []int64
	for i := range parts {
		parts[i] = NewHistogram()
		// Different ranges per part so the merge must grow the target.
		limit := int64(100) << (3 * i)
		for range 1000 + i*100 {
			v := r.Int64N(limit)
			samples = append(samples, v)
			parts[i].Record(v)
			all.Record(v)
		}
	}
	merged := NewHistogram()
	merged.Merge(NewHistogram()) // empty merges are no-ops
	merged.Merge(nil)
	for _, p := range parts {
		merged.Merge(p)
	}
	if merged.Count() != all.Count() || merged.Min() != all.Min() || merged.Max() != all.Max() || merged.Mean() != all.Mean() {
		t.Fatalf("merged count/min/max/mean %d/%d/%d/%v, want %d/%d/%d/%v",
			merged.Count(), merged.Min(), merged.Max(), merged.Mean(), all.Count(), all.Min(), all.Max(), all.Mean())
	}
	for _, q := range testQuantiles {
		if merged.Percentile(q) != all.Percentile(q) {
			t.Errorf("p%v: merged %d, single %d", q, merged.Percentile(q), all.Percentile(q))
		}
	}
	checkAccuracy(t, "merged", merged, samples)

	// Merging a smaller histogram into a larger one, and order independence.
	rev := NewHistogram()
	for i := len(parts) - 1; i >= 0; i-- {
		rev.Merge(parts[i])
	}
	for _, q := range testQuantiles {
		if rev.Percentile(q) != all.Percentile(q) {
			t.Errorf("reverse merge p%v: %d, want %d", q, rev.Percentile(q), all.Percentile(q))
		}
	}
	if parts[0].Count() != 1000 {
		t.Errorf("merge changed its source: count %d", parts[0].Count())
	}
}

func TestHistogramEdgeCases(t *testing.T) {
	h := NewHistogram()
	if h.Count() != 0 || h.Percentile(50) != 0 || h.Percentile(100) != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatalf("empty histogram: count %d p50 %d min %d max %d mean %v", h.Count(), h.Percentile(50), h.Min(), h.Max(), h.Mean())
	}

	for _, v := range []int64{0, 1, 511, 512, 12_345, 1 << 40, math.MaxInt64} {
		h := NewHistogram()
		h.Record(v)
		for _, q := range testQuantiles {
			if got := h.Percentile(q); got != v {
				t.Errorf("single value %d: p%v = %d", v, q, got)
			}
		}
		if h.Min() != v || h.Max() != v || h.Mean() != float64(v) {
			t.Errorf("single value %d: min %d max %d mean %v", v, h.Min(), h.Max(), h.Mean())
		}
	}

	h = NewHistogram()
	h.Record(-5) // a clock step backwards must not panic or go negative
	if h.Min() != 0 || h.Max() != 0 || h.Percentile(50) != 0 {
		t.Errorf("negative value: min %d max %d p50 %d", h.Min(), h.Max(), h.Percentile(50))
	}

	// Huge values next to small ones: exact extremes, no overflow.
	h = NewHistogram()
	h.Record(3)
	h.Record(math.MaxInt64)
	h.Record(math.MaxInt64 - 1)
	if h.Max() != math.MaxInt64 || h.Min() != 3 || h.Percentile(100) != math.MaxInt64 || h.Percentile(0) != 3 {
		t.Errorf("huge: min %d max %d p0 %d p100 %d", h.Min(), h.Max(), h.Percentile(0), h.Percentile(100))
	}
	if p := h.Percentile(50); p < math.MaxInt64/1000*995 {
		t.Errorf("huge: p50 %d, want ≈ MaxInt64", p)
	}
	if m := h.Mean(); m < 6e18 || m > 6.2e18 {
		t.Errorf("huge: mean %v", m)
	}

	// Out-of-range quantiles clamp to the extremes.
	h = NewHistogram()
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	if h.Percentile(-1) != 1 || h.Percentile(150) != 100 || h.Percentile(50) != 50 {
		t.Errorf("clamp: p-1 %d p150 %d p50 %d", h.Percentile(-1), h.Percentile(150), h.Percentile(50))
	}
}
