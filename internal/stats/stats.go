// Package stats holds the gateway's hot counters, built so that counting a
// request allocates nothing, takes no lock and, in steady state, writes no
// cache line another core writes:
//
//   - Counters are resolved once. A key_id's Requests is a small table of
//     counters by status code: eight slots filled on a code's first use
//     with CompareAndSwap, and a further block of eight chained on when
//     those are taken, so that steady state is a load, a compare and an
//     atomic add.
//   - No counter is shared by every request on every core. Counters of
//     many clients (the gateway's pseudo key_ids, the 401 reasons, the
//     latency histogram) are split into NumShards cache-line-padded
//     shards, summed at scrape time. A request adds to the shard of its
//     key, the caller's choice: the gateway uses the client connection's
//     id, since a connection's requests are served one after another,
//     mostly on one core, so its shard's line tends to stay in that core's
//     cache. A shard drawn at random per request was measured and rejected
//     (BenchmarkMetrics): the line it picks was most often last written by
//     another core.
//   - A real key_id's counters start as one cache line each (its requests
//     mostly come one at a time) and shard themselves the first time an
//     increment finds the line contended (a failed compare-and-swap):
//     memory grows with the key_ids in use, not NumShards times them.
//   - The Histogram has fixed bounds (100 µs to 10 min) and an atomic
//     count per bucket per shard.
package stats

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// NumShards is the number of shards of a hot counter; a power of two.
const NumShards = 16

// paddedCount is a counter alone on its cache line.
type paddedCount struct {
	n atomic.Uint64
	_ [56]byte
}

// shardArray is a sharded counter's shards.
type shardArray [NumShards]paddedCount

// counter is a monotonic counter, one cache line until it is sharded: a
// counter of a pseudo key_id from the start (newCounter), any other the
// first time an increment finds its word contended, that is written by
// another core between its load and its compare-and-swap. So a key_id used
// from one connection at a time costs one line, and one hammered from
// every core spreads its writes like a pseudo key_id's.
type Counter struct {
	n      atomic.Uint64
	shards atomic.Pointer[shardArray] // nil until sharded; then n stays as it is
	_      [48]byte
}

// NewCounter returns a counter, sharded from the start if shared.
func NewCounter(shared bool) *Counter {
	c := new(Counter)
	if shared {
		c.shards.Store(new(shardArray))
	}
	return c
}

// Inc adds 1, to the shard of key (the request's connection id, as a rule) once c is sharded.
func (c *Counter) Inc(key uint32) {
	if s := c.shards.Load(); s != nil {
		s[key&(NumShards-1)].n.Add(1)
		return
	}
	if n := c.n.Load(); c.n.CompareAndSwap(n, n+1) {
		return
	}
	// Contended: shard c from now on. This allocates once per counter.
	c.shards.CompareAndSwap(nil, new(shardArray))
	c.shards.Load()[key&(NumShards-1)].n.Add(1)
}

// Load returns c's value: its word plus its shards.
func (c *Counter) Load() uint64 {
	n := c.n.Load()
	if s := c.shards.Load(); s != nil {
		for i := range s {
			n += s[i].n.Load()
		}
	}
	return n
}

// codeCount counts one account's responses of one status code. Its size is
// a size class's, 128 bytes, so that its counter starts a cache line and its
// code, read by lookups of the account's other codes, is on another line.
type codeCount struct {
	Counter
	code int
	_    [56]byte
}

// codeBlock is a lock-free table of codeCounts, filled slot by slot.
type codeBlock struct {
	slots [8]atomic.Pointer[codeCount]
	next  atomic.Pointer[codeBlock]
}

// Requests are a key_id's counters: its responses by status code, and the
// 429s of its limiter. The zero value is ready, for a real key_id; Shared
// marks a pseudo key_id (many clients' requests), whose counters are
// sharded from the start. Set Shared before the first count.
type Requests struct {
	Shared  bool
	codes   codeBlock
	limited atomic.Pointer[Counter]
}

// Request counts a response with status code; key is the request's
// shard key.
func (s *Requests) Request(code int, key uint32) {
	b := &s.codes
	for {
		for i := range b.slots {
			c := b.slots[i].Load()
			if c == nil {
				// First use of this slot: claim it for code. Only this
				// path allocates, once per code per account.
				nc := &codeCount{code: code}
				if s.Shared {
					nc.shards.Store(new(shardArray))
				}
				if b.slots[i].CompareAndSwap(nil, nc) {
					nc.Inc(key)
					return
				}
				c = b.slots[i].Load()
			}
			if c.code == code {
				c.Inc(key)
				return
			}
		}
		next := b.next.Load()
		if next == nil {
			b.next.CompareAndSwap(nil, new(codeBlock))
			next = b.next.Load()
		}
		b = next
	}
}

// RateLimited counts a 429 from the account's limiter; key is the
// request's shard key.
func (s *Requests) RateLimited(key uint32) {
	c := s.limited.Load()
	if c == nil {
		s.limited.CompareAndSwap(nil, NewCounter(s.Shared))
		c = s.limited.Load()
	}
	c.Inc(key)
}

// RateLimitedCount returns the 429s counted by RateLimited, and false if
// there were none.
func (s *Requests) RateLimitedCount() (uint64, bool) {
	c := s.limited.Load()
	if c == nil {
		return 0, false
	}
	return c.Load(), true
}

// EachCode calls f for every status code counted so far.
func (s *Requests) EachCode(f func(code int, n uint64)) {
	for b := &s.codes; b != nil; b = b.next.Load() {
		for i := range b.slots {
			if c := b.slots[i].Load(); c != nil {
				f(c.code, c.Load())
			}
		}
	}
}

// latencyBounds are the latency histogram's bucket upper bounds, from
// 100 µs (a refusal) to 10 min (UPSTREAM_TIMEOUT's default).
var latencyBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 25 * time.Second, 50 * time.Second,
	100 * time.Second, 250 * time.Second, 600 * time.Second,
}

// histShard is one shard of the latency histogram: the sum of latencies in
// nanoseconds and a count per bucket (the last is +Inf), padded to whole
// cache lines. The sum comes first, on the line of the fastest buckets.
type histShard struct {
	sum    atomic.Uint64
	counts [len(latencyBounds) + 1]atomic.Uint64
	_      [64 - (len(latencyBounds)+2)*8%64]byte
}

// Histogram is a Prometheus histogram of request latencies. It is
// allocated on its own (3 KiB), so that its shards start on cache lines.
type Histogram struct {
	shards [NumShards]histShard
}

// Observe counts a latency d in the shard of key (the request's connection id, as a rule).
func (h *Histogram) Observe(d time.Duration, key uint32) {
	d = max(d, 0)
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	s := &h.shards[key&(NumShards-1)]
	s.counts[i].Add(1)
	s.sum.Add(uint64(d))
}

// Write writes h as the Prometheus histogram name: cumulative buckets,
// _sum in seconds and _count.
func (h *Histogram) Write(bb *bytes.Buffer, name string) {
	var counts [len(latencyBounds) + 1]uint64
	var sum uint64
	for i := range h.shards {
		s := &h.shards[i]
		for j := range s.counts {
			counts[j] += s.counts[j].Load()
		}
		sum += s.sum.Load()
	}
	metrics.WriteMetadataIfNeeded(bb, name, "histogram")
	var cum uint64
	for i, c := range counts {
		cum += c
		bb.WriteString(name)
		bb.WriteString(`_bucket{le="`)
		if i < len(latencyBounds) {
			bb.WriteString(strconv.FormatFloat(latencyBounds[i].Seconds(), 'g', -1, 64))
		} else {
			bb.WriteString("+Inf")
		}
		bb.WriteString(`"} `)
		bb.WriteString(strconv.FormatUint(cum, 10))
		bb.WriteByte('\n')
	}
	bb.WriteString(name)
	bb.WriteString("_sum ")
	bb.WriteString(strconv.FormatFloat(time.Duration(sum).Seconds(), 'g', -1, 64))
	bb.WriteByte('\n')
	bb.WriteString(name)
	bb.WriteString("_count ")
	bb.WriteString(strconv.FormatUint(cum, 10))
	bb.WriteByte('\n')
}

// EscapeLabel escapes s for a Prometheus label value.
func EscapeLabel(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' && c != '"' && c != '\n' {
			if b != nil {
				b = append(b, c)
			}
			continue
		}
		if b == nil {
			b = append(make([]byte, 0, len(s)+8), s[:i]...)
		}
		switch c {
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, '\\', c)
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

// MaxNames bounds the names a ByName counts separately; requests under
// names past it are counted under "other".
const MaxNames = 1024

// ByName counts requests and their statuses by a name (a model, say),
// for a bounded set of names: the caller counts only names it trusts.
type ByName struct {
	m sync.Map // name → *Requests
	n atomic.Int32
}

// Count counts one request under name, answered status.
func (b *ByName) Count(name string, status int, key uint32) {
	v, ok := b.m.Load(name)
	if !ok {
		if b.n.Load() >= MaxNames {
			name = "other"
		}
		var loaded bool
		v, loaded = b.m.LoadOrStore(name, &Requests{Shared: true})
		if !loaded {
			b.n.Add(1)
		}
	}
	v.(*Requests).Request(status, key)
}

// Write appends the counter metric, labelled label and code, in the
// Prometheus text format, sorted; nothing if nothing was counted.
func (b *ByName) Write(bb *bytes.Buffer, metric, label string) {
	type row struct {
		name string
		code int
		n    uint64
	}
	var rows []row
	b.m.Range(func(k, v any) bool {
		v.(*Requests).EachCode(func(code int, n uint64) { rows = append(rows, row{k.(string), code, n}) })
		return true
	})
	if len(rows) == 0 {
		return
	}
	slices.SortFunc(rows, func(a, b row) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return a.code - b.code
	})
	metrics.WriteMetadataIfNeeded(bb, metric, "counter")
	for _, r := range rows {
		fmt.Fprintf(bb, "%s{%s=\"%s\",code=\"%d\"} %d\n", metric, label, EscapeLabel(r.name), r.code, r.n)
	}
}

// Tokens counts the tokens upstreams reported, by key_id and model, for a
// bounded set of pairs: past MaxNames pairs, a new pair's tokens are
// counted under its key_id and the model "other".
type Tokens struct {
	m sync.Map // tokenPair → *tokenCounts
	n atomic.Int32
}

type tokenPair struct{ keyID, model string }

type tokenCounts struct{ prompt, completion atomic.Uint64 }

// Add counts prompt and completion tokens under keyID and model.
func (t *Tokens) Add(keyID, model string, prompt, completion int64) {
	k := tokenPair{keyID, model}
	v, ok := t.m.Load(k)
	if !ok {
		if t.n.Load() >= MaxNames {
			k.model = "other"
		}
		var loaded bool
		v, loaded = t.m.LoadOrStore(k, &tokenCounts{})
		if !loaded {
			t.n.Add(1)
		}
	}
	c := v.(*tokenCounts)
	c.prompt.Add(uint64(max(prompt, 0)))
	c.completion.Add(uint64(max(completion, 0)))
}

// Write appends metric, labelled key_id, model and type (prompt or
// completion), in the Prometheus text format, sorted; nothing if nothing
// was counted.
func (t *Tokens) Write(bb *bytes.Buffer, metric string) {
	type row struct {
		k tokenPair
		c *tokenCounts
	}
	var rows []row
	t.m.Range(func(k, v any) bool {
		rows = append(rows, row{k.(tokenPair), v.(*tokenCounts)})
		return true
	})
	if len(rows) == 0 {
		return
	}
	slices.SortFunc(rows, func(a, b row) int {
		if c := strings.Compare(a.k.keyID, b.k.keyID); c != 0 {
			return c
		}
		return strings.Compare(a.k.model, b.k.model)
	})
	metrics.WriteMetadataIfNeeded(bb, metric, "counter")
	for _, r := range rows {
		for _, tc := range []struct {
			name string
			n    uint64
		}{{"prompt", r.c.prompt.Load()}, {"completion", r.c.completion.Load()}} {
			fmt.Fprintf(bb, "%s{key_id=\"%s\",model=\"%s\",type=\"%s\"} %d\n", metric, EscapeLabel(r.k.keyID), EscapeLabel(r.k.model), tc.name, tc.n)
		}
	}
}
