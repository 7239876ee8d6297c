package logsink

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// wantLines fails the test unless lines are entryLine(g, i) for i in
// [from, to), in order.
func wantLines(t *testing.T, what string, lines []string, g, from, to int) {
	t.Helper()
	if len(lines) != to-from {
		t.Fatalf("%s: %d lines, want %d (lines %d to %d)", what, len(lines), to-from, from, to-1)
	}
	for i, line := range lines {
		if want := entryLine(g, from+i); line != want {
			t.Fatalf("%s: line %d = %q, want %q", what, i, line, want)
		}
	}
}

// countMessages returns how many of msgs contain sub.
func countMessages(msgs []string, sub string) int {
	n := 0
	for _, m := range msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

func TestSinkRetryBoundDevFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		if _, err := os.Stat("/dev/full"); err != nil {
			t.Skipf("no /dev/full: %v", err)
		}
		// /dev/full fails every write(2) with ENOSPC. Lines entry(0, 10) to
		// entry(0, 99) are all the same length, so the bound holds exactly ten
		// of them; the batch is written at two.
		line := len(entryLine(0, 10)) + 1
		s, _, h := newTestSink(t, Config{Path: "/dev/full", BatchBytes: 2 * line, RetryBytes: 10 * line, FlushInterval: time.Hour})
		stats := func(want Stats) {
			t.Helper()
			if st := s.Stats(); st != want {
				t.Fatalf("Stats = %+v, want %+v", st, want)
			}
		}

		for i := 10; i < 13; i++ {
			mustWrite(t, s, entry(0, i)) // never blocks, never fails
		}
		// The second line filled the batch: write 1 failed. Flush is write 2.
		if err := s.Flush(); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Flush on /dev/full = %v, want ENOSPC", err)
		}
		stats(Stats{WriteErrors: 2, Pending: 3})

		// Seven more lines fit the bound, the thirteen after are dropped.
		for i := 13; i < 33; i++ {
			mustWrite(t, s, entry(0, i))
		}
		if err := s.Flush(); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("second Flush = %v, want ENOSPC", err)
		}
		stats(Stats{WriteErrors: 3, Pending: 10, Failed: 13})

		// Close tries once more and counts what it could not write.
		if err := s.Close(); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Close = %v, want ENOSPC", err)
		}
		stats(Stats{WriteErrors: 4, Failed: 23})

		// The first failure was logged; the next ones, within 10 s, were
		// counted, and Close reported them with the lost lines.
		msgs := h.Messages()
		if len(msgs) != 2 ||
			!strings.Contains(msgs[0], "no space left on device") || !strings.Contains(msgs[0], "pending_lines=2 ") ||
			!strings.Contains(msgs[1], "lines lost") || !strings.Contains(msgs[1], "lost_lines=10 write_errors=3 dropped_lines=13") {
			t.Fatalf("ErrorLog messages:\n%s", strings.Join(msgs, "\n"))
		}
	})
}

// scriptedWrites returns a write hook that runs the steps in order, one per
// write of a batch, then writes for real. A step writes its first n bytes
// for real (all of them if n < 0) and returns err.
type writeStep struct {
	n   int
	err error
}

func scriptedWrites(steps ...writeStep) func(*os.File, []byte) (int, error) {
	var mu sync.Mutex
	return func(f *os.File, b []byte) (int, error) {
		mu.Lock()
		var st writeStep
		if len(steps) == 0 {
			st = writeStep{n: -1}
		} else {
			st, steps = steps[0], steps[1:]
		}
		mu.Unlock()
		if st.n < 0 || st.n > len(b) {
			st.n = len(b)
		}
		n, err := f.Write(b[:st.n])
		if err != nil {
			return n, err
		}
		return n, st.err
	}
}

func TestSinkShortWriteContinues(t *testing.T) {
	// A write cut in the middle of a line (a disk filling up), then one
	// that writes nothing, then space again: every line is in the file
	// once and whole, in order.
	synctest.Test(t, func(t *testing.T) {
		cut := len(entryLine(0, 10)) + 1 + 7 // line 10 whole, 7 bytes of line 11
		s, path, h := newHookedSink(t, Config{FlushInterval: time.Hour}, testHooks{
			write: scriptedWrites(writeStep{cut, syscall.ENOSPC}, writeStep{0, syscall.EIO}),
		})
		for i := 10; i < 20; i++ {
			mustWrite(t, s, entry(0, i))
		}
		if err := s.Flush(); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Flush = %v, want ENOSPC", err)
		}
		if st := s.Stats(); st != (Stats{Written: 1, WriteErrors: 1, Pending: 9}) {
			t.Fatalf("Stats after a short write = %+v", st)
		}
		if err := s.Flush(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("second Flush = %v, want EIO", err)
		}
		for i := 20; i < 25; i++ {
			mustWrite(t, s, entry(0, i))
		}
		if err := s.Flush(); err != nil {
			t.Fatalf("third Flush: %v", err)
		}
		if st := s.Stats(); st != (Stats{Written: 15, WriteErrors: 2}) {
			t.Fatalf("Stats after recovery = %+v", st)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wantLines(t, path, readLines(t, path), 0, 10, 25)
		msgs := h.Messages()
		if len(msgs) != 2 || !strings.Contains(msgs[0], "pending_lines=9 ") || !strings.Contains(msgs[1], "writable again") || !strings.Contains(msgs[1], "write_errors=2 dropped_lines=0") {
			t.Fatalf("ErrorLog messages:\n%s", strings.Join(msgs, "\n"))
		}
	})
}

func TestSinkShortWriteThenReopen(t *testing.T) {
	// A line cut short in the old file is written whole to the new one.
	synctest.Test(t, func(t *testing.T) {
		cut := len(entryLine(0, 10)) + 1 + 7
		s, path, _ := newHookedSink(t, Config{FlushInterval: time.Hour}, testHooks{
			write: scriptedWrites(writeStep{cut, syscall.ENOSPC}, writeStep{0, syscall.ENOSPC}),
		})
		for i := 10; i < 15; i++ {
			mustWrite(t, s, entry(0, i))
		}
		if err := s.Flush(); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Flush = %v, want ENOSPC", err)
		}
		rotated := path + ".1"
		if err := os.Rename(path, rotated); err != nil {
			t.Fatal(err)
		}
		// Reopen's write to the old file fails again; the pending lines go to
		// the new file.
		if err := s.Reopen(); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Reopen = %v, want the failed write's ENOSPC", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		old, err := os.ReadFile(rotated)
		if err != nil {
			t.Fatal(err)
		}
		if want := entryLine(0, 10) + "\n" + entryLine(0, 11)[:7]; string(old) != want {
			t.Fatalf("old file %q, want %q", old, want)
		}
		wantLines(t, "new file", readLines(t, path), 0, 11, 15)
		if st := s.Stats(); st != (Stats{Written: 5, WriteErrors: 2}) {
			t.Fatalf("Stats = %+v", st)
		}
	})
}

func TestSinkRemovedFileReopened(t *testing.T) {
	// The file removed, renamed away, or replaced by another, with no
	// Reopen: the sink writes to a new file at the path from its first
	// write a second (checkEvery) after it last checked the path, and not
	// before. Lines keep coming meanwhile, one a tick, as requests do.
	f := func(name string, change func(t *testing.T, path string) (old string)) {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const interval = 20 * time.Millisecond
				opened := time.Now()
				s, path, h := newTestSink(t, Config{FlushInterval: interval})
				const before = 50
				for i := range before {
					mustWrite(t, s, entry(0, i))
				}
				if err := s.Flush(); err != nil {
					t.Fatal(err)
				}
				old := change(t, path)
				// The sink opened the file, which is its last check: the
				// tick at checkEvery writes to the new file, starting with
				// the line written a tick before.
				n := before
				for {
					mustWrite(t, s, entry(0, n))
					n++
					advance(interval)
					reopened := s.Stats().Reopened
					if d := time.Since(opened); d < checkEvery {
						if reopened != 0 {
							t.Fatalf("reopened %v after the last check, before checkEvery (%v)", d, checkEvery)
						}
						continue
					}
					if reopened != 1 {
						t.Fatalf("Stats.Reopened = %d at checkEvery after the last check, want 1", reopened)
					}
					break
				}
				firstNew := n - 1
				for range 50 {
					mustWrite(t, s, entry(0, n))
					n++
				}
				if err := s.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if st := s.Stats(); st.Reopened != 1 || st.Written != uint64(n) || st.Failed != 0 || st.WriteErrors != 0 {
					t.Fatalf("Stats = %+v, want 1 reopen and %d lines written", st, n)
				}
				wantLines(t, "new file", readLines(t, path), 0, firstNew, n)
				if old != "" {
					// Renamed away: the lines before the reopen are in the
					// old file, so none is lost.
					wantLines(t, "old file", readLines(t, old), 0, 0, firstNew)
				}
				if msgs := h.Messages(); len(msgs) != 1 || countMessages(msgs, "removed or replaced; reopened") != 1 {
					t.Fatalf("ErrorLog messages:\n%s", strings.Join(msgs, "\n"))
				}
			})
		})
	}
	f("removed", func(t *testing.T, path string) string {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		return ""
	})
	f("renamed", func(t *testing.T, path string) string {
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		return path + ".1"
	})
	f("replaced", func(t *testing.T, path string) string {
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return path + ".1"
	})
	f("directory removed", func(t *testing.T, path string) string {
		if err := os.RemoveAll(filepath.Dir(path)); err != nil {
			t.Fatal(err)
		}
		return ""
	})
}
