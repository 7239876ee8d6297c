package logsink

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes on a new temporary directory and
// unmounts it at the end of the test (after the sinks opened later are
// closed). Without the privilege to mount it skips the test, unless the CI
// environment variable is set: CI must run it.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := "size=" + strconv.Itoa(size)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("cannot mount a tmpfs (%v); run as root, or set CI to make this a failure", err)
		}
		t.Fatalf("cannot mount a tmpfs in CI: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("cannot unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the file system is full, and
// returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// A byte at a time for what is left of the last page.
	for {
		if _, err := f.Write(chunk[:1]); err != nil {
			break
		}
	}
	return path
}

func TestSinkDiskFull(t *testing.T) {
	// A real file system fills up while requests keep logging, then space
	// returns: every line, written before, during and after, reaches the
	// file exactly once and in order, without a Flush, Reopen or Close to
	// help (the writer retries on its ticks). Two ways space returns: the
	// operator removes another file, and the pending lines are written on
	// the next tick; or removes the access log itself, and they are written
	// when the sink reopens the path, at its first write a second
	// (checkEvery) after it last checked the path, which frees the deleted
	// file's space. In a synctest bubble, on its clock.
	const interval = 20 * time.Millisecond
	f := func(name string, reopens uint64, writtenAt time.Duration, freeSpace func(t *testing.T, log, filler string)) {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := mountTmpfs(t, 256<<10)
				opened := time.Now()
				s, path, h := newTestSink(t, Config{Path: filepath.Join(dir, "logs", "a.log"), FlushInterval: interval})

				// Before: 2000 lines (about 140 KiB) reach the file.
				n := 0
				write := func(count int) {
					for range count {
						mustWrite(t, s, entry(0, n))
						n++
					}
				}
				write(2000)
				if err := s.Flush(); err != nil {
					t.Fatalf("Flush before the disk is full: %v", err)
				}
				before := n
				filler := fillDisk(t, dir)

				// During: 300 lines do not fit in what is left of the last
				// page; the write fails with ENOSPC (perhaps after a short
				// write), and the lines wait in memory.
				write(300)
				if err := s.Flush(); !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("Flush with the disk full = %v, want ENOSPC", err)
				}
				st := s.Stats()
				if st.WriteErrors == 0 || st.Pending == 0 || st.Failed != 0 || st.Written+st.Pending != uint64(n) {
					t.Fatalf("Stats with the disk full = %+v", st)
				}
				// Requests go on being served and logged: Write does not
				// block or fail. Each tick retries, and fails.
				write(200)
				advance(2 * interval)
				if got := s.Stats(); got.WriteErrors != st.WriteErrors+2 || got.Pending != uint64(n)-got.Written || got.Failed != 0 {
					t.Fatalf("Stats two ticks later, the disk still full = %+v, want two more write errors", got)
				}

				// After: space returns; a tick writes the pending lines.
				freeSpace(t, path, filler)
				for {
					st := s.Stats()
					if st.Pending == 0 && st.Written == uint64(n) {
						break
					}
					if d := time.Since(opened); d >= writtenAt {
						t.Fatalf("Stats %v after the sink opened, space back = %+v, want the pending lines written", d, st)
					}
					advance(interval)
				}
				if d := time.Since(opened); d != writtenAt {
					t.Fatalf("pending lines written %v after the sink opened, want %v", d, writtenAt)
				}
				write(100)
				if err := s.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				st = s.Stats()
				if st.Written != uint64(n) || st.Failed != 0 || st.Pending != 0 {
					t.Fatalf("Stats at the end = %+v, want %d lines written", st, n)
				}

				if st.Reopened != reopens {
					t.Fatalf("Stats.Reopened = %d, want %d", st.Reopened, reopens)
				}
				lines := readLines(t, path)
				if reopens == 0 {
					wantLines(t, "log", lines, 0, 0, n)
				} else {
					// The log was removed: the new file starts with the first
					// line not wholly written to the old one.
					first := n - len(lines)
					if first < before || first > before+300 {
						t.Fatalf("new log starts at line %d, want one in [%d, %d]", first, before, before+300)
					}
					wantLines(t, "new log", lines, 0, first, n)
				}
				msgs := h.Messages()
				if countMessages(msgs, "no space left on device") != 1 || countMessages(msgs, "writable again") != 1 {
					t.Fatalf("ErrorLog messages:\n%s", strings.Join(msgs, "\n"))
				}
				t.Logf("Stats = %+v; ErrorLog:\n%s", st, strings.Join(msgs, "\n"))
			})
		})
	}
	// Space returns two ticks in: the third tick writes.
	f("other file removed", 0, 3*interval, func(t *testing.T, _, filler string) {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	})
	f("log removed", 1, checkEvery, func(t *testing.T, log, _ string) {
		if err := os.Remove(log); err != nil {
			t.Fatal(err)
		}
	})
}
