//go:build !race

package logsink

import (
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestWriteAllocations asserts that Write does not allocate once the line
// buffer and batch pools are warm, while the writer goroutine runs and
// writes batches (its allocations would count too: AllocsPerRun counts the
// whole process).
//
// AllocsPerRun runs with GOMAXPROCS=1, where the writer only runs when the
// producer yields. Two steady states are measured: the writer keeping up
// (the producer yields after each Write, so the writer takes each batch as
// soon as it is handed over, and its buffer returns to the pool), and
// back-pressure (a small BufferLines that fills, so Write blocks on its
// slow path until the writer takes the batch).
func TestWriteAllocations(t *testing.T) {
	e := &Entry{
		Time:      fixedTime,
		KeyID:     "alice",
		Method:    []byte("POST"),
		Path:      []byte("/v1/chat/completions?x=1"),
		Status:    200,
		Latency:   1500 * time.Microsecond,
		BytesIn:   123,
		BytesOut:  4567,
		Upstream:  "http://127.0.0.1:8000",
		RequestID: []byte("0123456789abcdef"),
	}
	f := func(format Format, bufferLines int, yield bool) {
		t.Helper()
		s, err := New(Config{Path: filepath.Join(t.TempDir(), "a.log"), Format: format, BufferLines: bufferLines, BatchBytes: 4096})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		write := func() {
			if err := s.Write(e); err != nil {
				t.Fatal(err)
			}
			if yield {
				runtime.Gosched()
			}
		}
		// Warm up the pool and the batch buffer.
		for range 1000 {
			write()
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		const runs = 10000
		if allocs := testing.AllocsPerRun(runs, write); allocs != 0 {
			t.Fatalf("%v, BufferLines %d: Write allocates %v times per call", format, bufferLines, allocs)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Written != 1000+runs+1 || st.Failed != 0 {
			t.Fatalf("Stats = %+v", st)
		}
	}
	for _, format := range []Format{FormatText, FormatJSON} {
		f(format, 0, true)   // the default buffer, the writer keeping up
		f(format, 16, false) // back-pressure
	}
}
