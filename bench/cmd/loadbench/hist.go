package main

import (
	"math/bits"
	"time"
)

// histSubBits sets the histogram's precision: each power of two is split
// into 1<<histSubBits buckets, so a bucket is at most 1/128 (0.8%) of its
// values wide.
const histSubBits = 7

// histBuckets covers values up to 2^40 ns (about 18 minutes).
const histBuckets = (40 - histSubBits + 1) << histSubBits

// hist is a log-linear latency histogram in the manner of HdrHistogram:
// exact below 128 ns, then 128 buckets per power of two. Its zero value is
// empty and ready; it is not safe for concurrent use (each sender keeps its
// own and they are merged at the end).
type hist struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

func histIndex(v int64) int {
	if v < 1<<histSubBits {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - histSubBits - 1
	i := (e+1)<<histSubBits + int(v>>e) - 1<<histSubBits
	return min(i, histBuckets-1)
}

// histUpper returns the largest value that falls into bucket i.
func histUpper(i int) int64 {
	if i < 1<<histSubBits {
		return int64(i)
	}
	e := i>>histSubBits - 1
	m := int64(i&(1<<histSubBits-1)) + 1<<histSubBits
	return (m+1)<<e - 1
}

// record adds one value.
func (h *hist) record(d time.Duration) {
	h.counts[histIndex(int64(d))]++
	h.n++
	h.max = max(h.max, d)
}

// merge adds o's values to h.
func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the smallest bucket bound under which at least the
// fraction q of the values lie (so at most 0.8% above the true value), or 0
// for an empty histogram. quantile(1) is the exact maximum.
func (h *hist) quantile(q float64) time.Duration {
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
			return min(time.Duration(histUpper(i)), h.max)
		}
	}
	return h.max
}
