package logsink

import (
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func benchEntry() *Entry {
	return &Entry{
		Time:      time.Now(),
		KeyID:     "alice",
		Method:    []byte("POST"),
		Path:      []byte("/v1/chat/completions?stream=true"),
		Status:    200,
		Latency:   1234 * time.Microsecond,
		BytesIn:   512,
		BytesOut:  2048,
		Upstream:  "http://10.0.0.1:8000",
		RequestID: []byte("3f1c2a9e-8b7d-4e6f-a5c4-1d2e3f4a5b6c"),
	}
}

func benchSink(b *testing.B, format Format) *Sink {
	b.Helper()
	s, err := New(Config{Path: filepath.Join(b.TempDir(), "a.log"), Format: format})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})
	return s
}

func BenchmarkWrite(b *testing.B) {
	for _, format := range []Format{FormatText, FormatJSON} {
		b.Run(format.String(), func(b *testing.B) {
			s := benchSink(b, format)
			e := benchEntry()
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Write(e); err != nil {
					b.Fatal(err)
				}
			}
			// Include the time to get the lines into the file.
			if err := s.Flush(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func BenchmarkWriteParallel(b *testing.B) {
	for _, format := range []Format{FormatText, FormatJSON} {
		b.Run(format.String(), func(b *testing.B) {
			s := benchSink(b, format)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				e := benchEntry()
				for pb.Next() {
					if err := s.Write(e); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := s.Flush(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(s.Stats().Waited)/float64(b.N), "waited/op")
		})
	}
}

// BenchmarkFormat is the formatting alone, the baseline for Write.
func BenchmarkFormat(b *testing.B) {
	for _, format := range []Format{FormatText, FormatJSON} {
		b.Run(format.String(), func(b *testing.B) {
			e := benchEntry()
			buf := make([]byte, 0, 512)
			var ts stamp
			b.ReportAllocs()
			for b.Loop() {
				buf = appendLine(buf[:0], format, e, &ts)
			}
		})
	}
}

// BenchmarkTimestamp compares appendTimestamp, a stamp within one second
// (as a Sink's lines mostly are) and time.AppendFormat.
func BenchmarkTimestamp(b *testing.B) {
	t := time.Now()
	buf := make([]byte, 0, 64)
	b.Run("appendTimestamp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = appendTimestamp(buf[:0], t)
		}
	})
	b.Run("stamp", func(b *testing.B) {
		var ts stamp
		b.ReportAllocs()
		for b.Loop() {
			buf = ts.appendTime(buf[:0], t)
		}
	})
	b.Run("AppendFormat", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = t.UTC().AppendFormat(buf[:0], timestampLayout)
		}
	})
}

// BenchmarkWriteYield is Write as a gateway handler calls it: the calling
// goroutine yields after each request (in the gateway, to wait for the
// network), so the writer goroutine gets to run whenever it is runnable.
// Run it with -cpu 1 to see what a goroutine switch per line would cost on
// a gateway pinned to one core. "Gosched" is the baseline: the yield alone.
func BenchmarkWriteYield(b *testing.B) {
	b.Run("Gosched", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			runtime.Gosched()
		}
	})
	for _, format := range []Format{FormatText, FormatJSON} {
		b.Run(format.String(), func(b *testing.B) {
			s := benchSink(b, format)
			e := benchEntry()
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Write(e); err != nil {
					b.Fatal(err)
				}
				runtime.Gosched()
			}
			if err := s.Flush(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
