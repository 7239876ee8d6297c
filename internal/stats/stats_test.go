package stats

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRequestsConcurrent counts 20 status codes (more than one block of
// slots) from 8 goroutines at once, sharded and not: every code must appear
// once with its exact count.
func TestRequestsConcurrent(t *testing.T) {
	f := func(shared bool) {
		t.Helper()
		s := &Requests{Shared: shared}
		const goroutines, rounds, codes = 8, 200, 20
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range rounds * codes {
					s.Request(100+(i+g)%codes, uint32(g))
					if i%codes == 0 {
						s.RateLimited(uint32(g))
					}
				}
			}()
		}
		wg.Wait()
		got := map[int]uint64{}
		s.EachCode(func(code int, n uint64) {
			if _, dup := got[code]; dup {
				t.Errorf("shared=%v: code %d in two slots", shared, code)
			}
			got[code] = n
		})
		if len(got) != codes {
			t.Errorf("shared=%v: %d codes, want %d: %v", shared, len(got), codes, got)
		}
		for c := 100; c < 100+codes; c++ {
			if got[c] != goroutines*rounds {
				t.Errorf("shared=%v: code %d counted %d, want %d", shared, c, got[c], goroutines*rounds)
			}
		}
		if n := s.limited.Load().Load(); n != goroutines*rounds {
			t.Errorf("shared=%v: rate limited %d, want %d", shared, n, goroutines*rounds)
		}
	}
	f(false)
	f(true)
}

func TestLatencyHistogramBuckets(t *testing.T) {
	h := new(Histogram)
	for _, d := range []time.Duration{
		-time.Second,                     // a clock step: counted as 0
		0,                                // le=0.0001
		100 * time.Microsecond,           // le=0.0001: bounds are inclusive
		100*time.Microsecond + 1,         // le=0.00025
		time.Second,                      // le=1
		10 * time.Minute,                 // le=600
		10*time.Minute + time.Nanosecond, // +Inf
	} {
		h.Observe(d, uint32(d))
	}
	var bb bytes.Buffer
	h.Write(&bb, "x")
	got := bb.String()
	for _, want := range []string{
		`x_bucket{le="0.0001"} 3` + "\n",
		`x_bucket{le="0.00025"} 4` + "\n",
		`x_bucket{le="0.5"} 4` + "\n",
		`x_bucket{le="1"} 5` + "\n",
		`x_bucket{le="250"} 5` + "\n",
		`x_bucket{le="600"} 6` + "\n",
		`x_bucket{le="+Inf"} 7` + "\n",
		"x_sum 1201.000200002\n",
		"x_count 7\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("histogram lacks %q:\n%s", want, got)
		}
	}
}

func TestEscapeLabel(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := EscapeLabel(in); got != want {
			t.Errorf("EscapeLabel(%q) = %q, want %q", in, got, want)
		}
	}
	f("", "")
	f("http://a:1/v1", "http://a:1/v1")
	f(`a"b`, `a\"b`)
	f(`a\b`, `a\\b`)
	f("a\nb", `a\nb`)
	f(`"\`+"\n", `\"\\\n`)
}

// TestCounterSharding: a real key_id's counter stays one cache line while
// nothing contends for it, and keeps its exact count across sharding.
func TestCounterSharding(t *testing.T) {
	c := NewCounter(false)
	for i := range 1000 {
		c.Inc(uint32(i))
	}
	if c.shards.Load() != nil {
		t.Fatal("an uncontended counter was sharded")
	}
	if n := c.Load(); n != 1000 {
		t.Fatalf("load() = %d, want 1000", n)
	}
	// Sharded as a contended increment would: the word's count is kept.
	c.shards.Store(new(shardArray))
	for i := range 1000 {
		c.Inc(uint32(i))
	}
	if n := c.n.Load(); n != 1000 {
		t.Errorf("the word changed after sharding: %d, want 1000", n)
	}
	if n := c.Load(); n != 2000 {
		t.Errorf("load() = %d, want 2000", n)
	}
	if s := NewCounter(true); s.shards.Load() == nil {
		t.Error("a shared counter is not sharded from the start")
	}
}

// TestTokensBound: pairs past MaxNames count under their key_id and
// "other", tokens add up per pair, and Write escapes and sorts.
func TestTokensBound(t *testing.T) {
	var tk Tokens
	for i := range MaxNames {
		tk.Add("k", fmt.Sprintf("m%04d", i), 1, 2)
	}
	tk.Add("k", "m0000", 10, 20)
	tk.Add("k", "late", 3, 4)
	tk.Add("k\"", "later", 5, 6)
	var bb bytes.Buffer
	tk.Write(&bb, "authgate_tokens_total")
	out := bb.String()
	for _, want := range []string{
		`authgate_tokens_total{key_id="k",model="m0000",type="prompt"} 11`,
		`authgate_tokens_total{key_id="k",model="m0000",type="completion"} 22`,
		`authgate_tokens_total{key_id="k",model="other",type="prompt"} 3`,
		`authgate_tokens_total{key_id="k\"",model="other",type="completion"} 6`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(out, "late") {
		t.Errorf("a pair past the bound has its own label")
	}
	if first := strings.Index(out, `key_id="k",model="m0000"`); first < 0 || first > strings.Index(out, `key_id="k",model="m0001"`) {
		t.Errorf("not sorted")
	}
}
