// Package loadgen holds the benchmark's own load generators, beside wrk:
// a fixed-rate (open-loop) load in the manner of wrk2, a streaming client
// that times the events of streamed responses one stream at a time, the
// streams-at-scale load that holds thousands of streams at once (Streams),
// and idle keep-alive connections (OpenIdle). bench/README.md describes
// how each measures.
package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/authgate/authgate/bench/internal/latency"
	"github.com/authgate/authgate/bench/internal/rawhttp"
)

// OpenLoop is a fixed-rate (open-loop) load: conns connections, each
// sending on its own schedule so that together they send rate requests per
// second, evenly spread, whatever the server's answers take, in the manner
// of wrk2.
//
// Latency is counted from when a request was due, not from when it was
// written, when the connection was still waiting for the previous response
// at that time: the wait behind a slow server is the server's (no
// coordinated omission). When the connection was free, it is counted from
// the write, so that the sender's own timer slop is not charged to the
// server; such late writes are counted in Late instead, to show whether the
// generator kept up.
type OpenLoop struct {
	Addr     string
	Request  []byte // the request's bytes (rawhttp.Request), sent as they are
	Conns    int
	Rate     float64       // requests per second, all connections together
	Warmup   time.Duration // sent but not recorded
	Duration time.Duration // recorded, after Warmup
	Status   int           // the status every response must have
}

// OpenLoopResult is one open-loop run.
type OpenLoopResult struct {
	Rate     float64 `json:"rate"`     // requests per second asked for
	Achieved float64 `json:"achieved"` // responses recorded per second
	Requests int64   `json:"requests"` // responses recorded
	Errors   int64   `json:"errors"`   // wrong statuses and connection errors (recorded period)
	Late     int64   `json:"late"`     // writes more than 1 ms behind schedule on a free connection
	P50      float64 `json:"p50_us"`
	P90      float64 `json:"p90_us"`
	P99      float64 `json:"p99_us"`
	Max      float64 `json:"max_us"`
	GenCPU   float64 `json:"gen_cpu"` // CPU seconds the generator used per second of run
	FirstErr string  `json:"first_error,omitempty"`
}

// Run sends the load and returns what it measured. It returns early, with
// what it has, if ctx is cancelled.
func (o *OpenLoop) Run(ctx context.Context) OpenLoopResult {
	interval := time.Duration(float64(o.Conns) / o.Rate * float64(time.Second))
	start := time.Now().Add(50 * time.Millisecond) // time to dial
	recordFrom := start.Add(o.Warmup)
	end := recordFrom.Add(o.Duration)

	var (
		mu       sync.Mutex
		total    latency.Hist
		requests int64
		errs     int64
		late     int64
		firstErr string
	)
	cpu0 := selfCPU()
	var wg sync.WaitGroup
	for j := range o.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var (
				h                 latency.Hist
				nreq, nerr, nlate int64
				myErr             string
				conn              net.Conn
				br                *bufio.Reader
				prevDone          time.Time
			)
			fail := func(err error) {
				if myErr == "" {
					myErr = err.Error()
				}
				if conn != nil {
					conn.Close()
					conn = nil
				}
			}
			next := start.Add(time.Duration(j) * interval / time.Duration(o.Conns))
			for ; next.Before(end) && ctx.Err() == nil; next = next.Add(interval) {
				if conn == nil {
					c, err := net.DialTimeout("tcp", o.Addr, 5*time.Second)
					if err != nil {
						nerr++
						fail(err)
						time.Sleep(10 * time.Millisecond)
						continue
					}
					conn, br = c, bufio.NewReaderSize(c, 16<<10)
				}
				now := time.Now()
				if wait := next.Sub(now); wait > 0 {
					time.Sleep(wait)
					now = time.Now()
				}
				origin := now
				if prevDone.After(next) {
					origin = next // queued behind the previous response
				} else if now.Sub(next) > time.Millisecond {
					nlate++
				}
				recorded := !next.Before(recordFrom)
				conn.SetDeadline(now.Add(30 * time.Second))
				if _, err := conn.Write(o.Request); err != nil {
					nerr++
					fail(err)
					continue
				}
				r, err := rawhttp.ReadResponse(br, false, nil)
				done := time.Now()
				prevDone = done
				if err != nil {
					if recorded {
						nerr++
					}
					fail(err)
					continue
				}
				if r.Close {
					conn.Close()
					conn = nil
				}
				if !recorded {
					continue
				}
				if r.Status != o.Status {
					nerr++
					if myErr == "" {
						myErr = fmt.Sprintf("status %d, want %d", r.Status, o.Status)
					}
					continue
				}
				nreq++
				h.Record(done.Sub(origin))
			}
			if conn != nil {
				conn.Close()
			}
			mu.Lock()
			total.Merge(&h)
			requests += nreq
			errs += nerr
			late += nlate
			if firstErr == "" {
				firstErr = myErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return OpenLoopResult{
		Rate:     o.Rate,
		Achieved: float64(requests) / o.Duration.Seconds(),
		Requests: requests,
		Errors:   errs,
		Late:     late,
		P50:      us(total.Quantile(0.50)),
		P90:      us(total.Quantile(0.90)),
		P99:      us(total.Quantile(0.99)),
		Max:      us(total.Quantile(1)),
		GenCPU:   (selfCPU() - cpu0).Seconds() / elapsed.Seconds(),
		FirstErr: firstErr,
	}
}

// selfCPU returns the CPU time (user and system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
