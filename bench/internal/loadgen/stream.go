package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/authgate/authgate/bench/internal/rawhttp"
)

// StreamResult is one streaming run against one target: streamed chat
// completions one at a time on one kept-alive connection.
type StreamResult struct {
	Streams  int     `json:"streams"`
	TTFE50   float64 `json:"ttfe_p50_us"` // time to first event: from writing the request to reading the first "data:" event
	TTFE99   float64 `json:"ttfe_p99_us"`
	Gap50    float64 `json:"gap_p50_us"` // delay between two consecutive events
	Gap99    float64 `json:"gap_p99_us"`
	Events   int     `json:"events_per_stream"`
	FirstErr string  `json:"first_error,omitempty"`
}

// RunStreams sends req, a streamed request, to addr one after another on
// one kept-alive connection for d, and measures each response's time to
// first event and the delays between events.
func RunStreams(ctx context.Context, addr string, req []byte, d time.Duration) (StreamResult, error) {
	var res StreamResult
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return res, err
	}
	defer func() { conn.Close() }()
	br := bufio.NewReaderSize(conn, 16<<10)
	var firsts, gaps []time.Duration
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		start := time.Now()
		if _, err := conn.Write(req); err != nil {
			return res, err
		}
		var last time.Time
		events := 0
		r, err := rawhttp.ReadResponse(br, false, func(chunk []byte) {
			now := time.Now()
			n := bytes.Count(chunk, []byte("data: "))
			if n == 0 {
				return
			}
			if events == 0 {
				firsts = append(firsts, now.Sub(start))
			} else {
				gaps = append(gaps, now.Sub(last))
			}
			last = now
			events += n
		})
		if err != nil {
			return res, err
		}
		if r.Status != 200 {
			return res, fmt.Errorf("status %d, want 200", r.Status)
		}
		if events == 0 {
			return res, fmt.Errorf("no event in the response (was it streamed, chunked?)")
		}
		res.Streams++
		res.Events = events
		if r.Close {
			conn.Close()
			if conn, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
				return res, err
			}
			br.Reset(conn)
		}
	}
	us := func(d []time.Duration, q float64) float64 {
		if len(d) == 0 {
			return 0
		}
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[int(q*float64(len(s)-1))]) / float64(time.Microsecond)
	}
	res.TTFE50, res.TTFE99 = us(firsts, 0.5), us(firsts, 0.99)
	res.Gap50, res.Gap99 = us(gaps, 0.5), us(gaps, 0.99)
	return res, nil
}
