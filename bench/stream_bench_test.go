package bench_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

// streamEventGap is the mock upstream's pause between two events.
const streamEventGap = 2 * time.Millisecond

// BenchmarkStream measures a streamed chat completion over loopback TCP,
// directly from the mock upstream and through the gateway, in one run: the
// time to the first event (from writing the request to reading the first
// "data:" line) and the delay of each later event after the one before
// (the upstream pauses streamEventGap between events). It reports their
// medians (ttfe-µs, gap-µs); the gateway's overhead is the difference
// between its figures and direct's. One request at a time, so queueing
// does not blur the figures.
func BenchmarkStream(b *testing.B) {
	mock := mockupstream.New(mockupstream.Config{StreamChunks: 8, ChunkDelay: streamEventGap})
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go mock.Serve(upLn)
	b.Cleanup(func() { mock.Shutdown() })

	e, ok, err := auth.ParseLine([]byte("bench:"+keyValid), 1)
	if !ok || err != nil {
		b.Fatal(err)
	}
	e.Settings.RPM = auth.MaxRPM
	keys, _ := auth.NewKeySet([]auth.Entry{e})
	gw, err := server.New(server.Config{
		Keys:      keys,
		Upstreams: []string{"http://" + upLn.Addr().String()},
		AccessLog: filepath.Join(b.TempDir(), "access.log"),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	gwLn, err := server.Listen("127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	go gw.Serve(gwLn)
	b.Cleanup(func() { gw.Close() })

	for _, target := range []struct{ name, addr string }{
		{"direct", upLn.Addr().String()},
		{"gateway", gwLn.Addr().String()},
	} {
		b.Run(target.name, func(b *testing.B) {
			conn, err := net.Dial("tcp", target.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
			req := fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n"+
				"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", keyValid, len(body), body)
			var firsts, gaps []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := io.WriteString(conn, req); err != nil {
					b.Fatal(err)
				}
				first, gap, err := readStream(br, start)
				if err != nil {
					b.Fatal(err)
				}
				firsts = append(firsts, first)
				gaps = append(gaps, gap...)
			}
			b.StopTimer()
			b.ReportMetric(float64(median(firsts).Microseconds()), "ttfe-µs")
			b.ReportMetric(float64(median(gaps).Microseconds()), "gap-µs")
		})
	}
}

// readStream reads one chunked SSE response from br and returns the time
// from start to its first "data:" event and the delays between events.
func readStream(br *bufio.Reader, start time.Time) (time.Duration, []time.Duration, error) {
	// Head.
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return 0, nil, err
		}
		if line == "\r\n" {
			break
		}
		if strings.HasPrefix(line, "HTTP/1.1 ") && !strings.HasPrefix(line, "HTTP/1.1 200") {
			return 0, nil, fmt.Errorf("status line %q", line)
		}
	}
	// Chunked body: size line, data, CRLF.
	var first time.Duration
	var gaps []time.Duration
	last := start
	for {
		sizeLine, err := br.ReadString('\n')
		if err != nil {
			return 0, nil, err
		}
		var size int
		if _, err := fmt.Sscanf(sizeLine, "%x", &size); err != nil {
			return 0, nil, fmt.Errorf("chunk size %q: %w", sizeLine, err)
		}
		if size == 0 {
			if _, err := br.ReadString('\n'); err != nil {
				return 0, nil, err
			}
			return first, gaps, nil
		}
		chunk := make([]byte, size+2)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return 0, nil, err
		}
		now := time.Now()
		if n := bytes.Count(chunk, []byte("data: ")); n > 0 {
			if first == 0 {
				first = now.Sub(start)
			} else {
				gaps = append(gaps, now.Sub(last))
			}
			last = now
		}
	}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
