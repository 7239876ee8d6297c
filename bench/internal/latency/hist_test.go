package latency

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestIndexBounds(t *testing.T) {
	// Every value lies in a bucket whose upper bound is at least the value
	// and at most 1/128 above it.
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 1e6, 123456789, 1 << 39} {
		i := index(v)
		up := upper(i)
		if up < v {
			t.Errorf("value %d: bucket %d's upper bound %d is below it", v, i, up)
		}
		if float64(up-v) > float64(v)/128+1 {
			t.Errorf("value %d: bucket %d's upper bound %d is more than 1/128 above it", v, i, up)
		}
		if i > 0 && upper(i-1) >= v {
			t.Errorf("value %d: the bucket before %d already holds it", v, i)
		}
	}
}

func TestQuantile(t *testing.T) {
	var h Hist
	if h.Quantile(0.5) != 0 {
		t.Fatal("empty histogram: quantile not 0")
	}
	r := rand.New(rand.NewPCG(1, 2))
	var vals []time.Duration
	for range 100_000 {
		d := time.Duration(r.ExpFloat64() * float64(200*time.Microsecond))
		vals = append(vals, d)
		h.Record(d)
	}
	slices.Sort(vals)
	f := func(q float64) {
		t.Helper()
		want := vals[int(q*float64(len(vals)))-1]
		got := h.Quantile(q)
		if got < want || float64(got-want) > float64(want)/100 {
			t.Errorf("q=%v: got %v, want %v (within 1%% above)", q, got, want)
		}
	}
	f(0.5)
	f(0.9)
	f(0.99)
	f(0.999)
	if h.Quantile(1) != vals[len(vals)-1] {
		t.Errorf("max: got %v, want %v", h.Quantile(1), vals[len(vals)-1])
	}

	var m Hist
	m.Merge(&h)
	m.Merge(&h)
	if m.n != 2*h.n || m.Quantile(0.5) != h.Quantile(0.5) {
		t.Errorf("merge: n %d, p50 %v; want %d, %v", m.n, m.Quantile(0.5), 2*h.n, h.Quantile(0.5))
	}
}
