package main

import (
	"math"
	"math/bits"
)

// Histogram is a log-linear latency histogram in the spirit of HdrHistogram.
// Averages hide the tail that matters for a store with a quorum round trip on
// every request, and keeping every sample costs memory proportional to the run
// length; this keeps bounded memory and still answers any percentile to within
// 0.2% of the true sample.
//
// Values (microseconds in sessionbench) below 2·subCount are counted exactly.
// Above that, every power of two [2^e, 2^(e+1)) is split into subCount equal
// linear sub-buckets, so a bucket is at most 1/subCount of its lower bound
// wide; reporting its midpoint bounds the relative error by 1/(2·subCount).
//
// A Histogram is not safe for concurrent use: every worker records into its
// own and the run merges them at the end, so the hot path takes no lock.
type Histogram struct {
	counts []uint64 // grown on demand, so memory follows the largest value seen
	total  uint64
	min    int64
	max    int64
	sum    float64 // float: a sum of huge values must not wrap
}

const (
	subBits  = 8
	subCount = 1 << subBits // linear sub-buckets per power of two
)

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{} }

// bucketIndex maps a value to its bucket. Values below 2·subCount map to
// themselves; above, shift drops the bits beyond the top subBits+1 ones.
func bucketIndex(v uint64) int {
	shift := bits.Len64(v) - 1 - subBits
	if shift < 0 {
		shift = 0
	}
	return shift*subCount + int(v>>uint(shift))
}

// bucketBounds returns the lowest value of bucket i and its width.
func bucketBounds(i int) (lower, width uint64) {
	if i < 2*subCount {
		return uint64(i), 1
	}
	shift := i/subCount - 1
	sub := uint64(i - shift*subCount) // in [subCount, 2·subCount)
	return sub << uint(shift), 1 << uint(shift)
}

// Record counts one value; negative values count as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	i := bucketIndex(uint64(v))
	if i >= len(h.counts) {
		h.grow(i + 1)
	}
	h.counts[i]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += float64(v)
}

// grow extends counts to at least n buckets, doubling to keep growth rare.
func (h *Histogram) grow(n int) {
	c := max(n, 2*len(h.counts), 4*subCount)
	counts := make([]uint64, c)
	copy(counts, h.counts)
	h.counts = counts
}

// Merge adds every value recorded in o to h. o is unchanged.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.total == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.grow(len(o.counts))
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Min is the smallest recorded value, exact; 0 when empty.
func (h *Histogram) Min() int64 { return h.min }

// Max is the largest recorded value, exact; 0 when empty.
func (h *Histogram) Max() int64 { return h.max }

// Mean is the exact arithmetic mean; 0 when empty.
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Percentile returns the value at percentile q (0–100) by the nearest-rank
// definition — the ceil(q/100·n)-th smallest value — to within the bucket's
// half width, clamped to [Min, Max]. The smallest and largest ranks (p0,
// p100, any percentile of a single value) are exact. It returns 0 when the
// histogram is empty.
func (h *Histogram) Percentile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 100)
	rank := uint64(math.Ceil(q / 100 * float64(h.total)))
	switch {
	case rank <= 1:
		return h.min
	case rank >= h.total:
		return h.max
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lower, width := bucketBounds(i)
			mid := lower + (width-1)/2
			return min(max(int64(mid), h.min), h.max)
		}
	}
	return h.max // unreachable: counts sum to total
}
