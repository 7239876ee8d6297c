// Package latency holds the benchmark's latency histogram, log-linear in
// the manner of HdrHistogram, which the open-loop load generator records
// every response's latency into.
package latency

import (
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: each power of two is split into
// 1<<subBits buckets, so a bucket is at most 1/128 (0.8%) of its values
// wide.
const subBits = 7

// buckets covers values up to 2^40 ns (about 18 minutes).
const buckets = (40 - subBits + 1) << subBits

// Hist is a log-linear latency histogram in the manner of HdrHistogram:
// exact below 128 ns, then 128 buckets per power of two. Its zero value is
// empty and ready; it is not safe for concurrent use (each sender keeps its
// own and they are merged at the end).
type Hist struct {
	counts [buckets]uint64
	n      uint64
	max    time.Duration
}

func index(v int64) int {
	if v < 1<<subBits {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - subBits - 1
	i := (e+1)<<subBits + int(v>>e) - 1<<subBits
	return min(i, buckets-1)
}

// upper returns the largest value that falls into bucket i.
func upper(i int) int64 {
	if i < 1<<subBits {
		return int64(i)
	}
	e := i>>subBits - 1
	m := int64(i&(1<<subBits-1)) + 1<<subBits
	return (m+1)<<e - 1
}

// Record adds one value.
func (h *Hist) Record(d time.Duration) {
	h.counts[index(int64(d))]++
	h.n++
	h.max = max(h.max, d)
}

// Count returns how many values h holds.
func (h *Hist) Count() uint64 { return h.n }

// Merge adds o's values to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Quantile returns the smallest bucket bound under which at least the
// fraction q of the values lie (so at most 0.8% above the true value), or 0
// for an empty histogram. Quantile(1) is the exact maximum.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(upper(i)), h.max)
		}
	}
	return h.max
}
