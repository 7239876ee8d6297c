package logsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// recordingHandler is a slog.Handler that keeps every record's message.
type recordingHandler struct {
	mu       sync.Mutex
	messages []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.messages = append(h.messages, b.String())
	return nil
}

// reset forgets the messages recorded so far.
func (h *recordingHandler) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.messages = nil
}

func (h *recordingHandler) Messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.messages...)
}

// advance lets d pass on the clock of the synctest bubble the test runs
// in, then waits until every goroutine of the bubble (the sink's writer
// among them) has done what that time asks of it and is blocked again.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// readFile returns the content of the file at path.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newTestSink opens a Sink on cfg, filling in a Path in a temporary
// directory and a recording ErrorLog, and closes it at the end of the test.
func newTestSink(t *testing.T, cfg Config) (*Sink, string, *recordingHandler) {
	t.Helper()
	return newHookedSink(t, cfg, testHooks{})
}

// newHookedSink is newTestSink with test hooks.
func newHookedSink(t *testing.T, cfg Config, hooks testHooks) (*Sink, string, *recordingHandler) {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "logs", "api_access.log")
	}
	h := &recordingHandler{}
	if cfg.ErrorLog == nil {
		cfg.ErrorLog = slog.New(h)
	}
	s, err := newSink(cfg, hooks)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, cfg.Path, h
}

// readLines returns the lines of the file at path, without newlines; it
// fails the test if the file does not end in a newline.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("cannot read log: %v", err)
	}
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] != '\n' {
		t.Fatalf("log does not end in a newline: %q", b)
	}
	return strings.Split(string(b[:len(b)-1]), "\n")
}

// entry returns an entry whose line names g and i in its key id.
func entry(g, i int) *Entry {
	return &Entry{
		Time:   fixedTime,
		KeyID:  "k" + strconv.Itoa(g) + "-" + strconv.Itoa(i),
		Method: []byte("POST"),
		Path:   []byte("/v1/chat/completions?n=" + strconv.Itoa(i)),
		Status: 200,
	}
}

// entryLine is the text line of entry(g, i).
func entryLine(g, i int) string {
	return fmt.Sprintf("2026-11-27T06:30:22.123456Z | k%d-%d | POST /v1/chat/completions | 200", g, i)
}

func mustWrite(t testing.TB, s *Sink, e *Entry) {
	t.Helper()
	if err := s.Write(e); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func TestNewInvalidConfig(t *testing.T) {
	f := func(cfg Config) {
		t.Helper()
		s, err := New(cfg)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("New(%+v) error = %v, want ErrInvalidConfig", cfg, err)
		}
		if s != nil {
			t.Fatalf("New(%+v) returned a Sink with its error", cfg)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	f(Config{})
	f(Config{Path: path, Format: 2})
	f(Config{Path: path, BufferLines: -1})
	f(Config{Path: path, FlushInterval: -time.Second})
	f(Config{Path: path, BatchBytes: -1})
	f(Config{Path: path, RetryBytes: -1})
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a rejected config created the file: %v", err)
	}
}

func TestNewCannotOpen(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f := func(path string) {
		t.Helper()
		if _, err := New(Config{Path: path}); err == nil || !strings.Contains(err.Error(), strconv.Quote(path)) && !strings.Contains(err.Error(), strconv.Quote(filepath.Dir(path))) {
			t.Fatalf("New(%q) error = %v, want one naming the path", path, err)
		}
	}
	f(filepath.Join(notDir, "a.log"))        // parent is a file
	f(filepath.Join(notDir, "sub", "a.log")) // cannot create the directory
	f(dir)                                   // a directory
}

func TestSinkCreatesDirectoryAndAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "api_access.log")
	for round := range 2 {
		s, err := New(Config{Path: path})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		mustWrite(t, s, entry(round, 0))
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	got := readLines(t, path)
	if len(got) != 2 || got[0] != entryLine(0, 0) || got[1] != entryLine(1, 0) {
		t.Fatalf("lines = %q", got)
	}
	for _, p := range []string{path, filepath.Dir(path)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o644)
		if fi.IsDir() {
			want = 0o755 | os.ModeDir
		}
		if fi.Mode()&^os.FileMode(0o022) != want&^os.FileMode(0o022) { // umask may clear group/other write
			t.Fatalf("%s mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestSinkConcurrentWritesThenClose(t *testing.T) {
	for _, format := range []Format{FormatText, FormatJSON} {
		t.Run(format.String(), func(t *testing.T) {
			// A small batch and buffer so that batching, back-pressure and
			// many write(2) calls all happen.
			s, path, _ := newTestSink(t, Config{Format: format, BufferLines: 64, BatchBytes: 4096})
			const goroutines, writes = 8, 1000
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range writes {
						mustWrite(t, s, entry(g, i))
					}
				})
			}
			wg.Wait()
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			lines := readLines(t, path)
			if len(lines) != goroutines*writes {
				t.Fatalf("%d lines, want %d", len(lines), goroutines*writes)
			}
			// Every goroutine's lines are there once each, in the order
			// it wrote them.
			next := make([]int, goroutines)
			for _, line := range lines {
				key := line
				if format == FormatJSON {
					key = checkJSONLine(t, []byte(line+"\n")).KeyID
				} else {
					fields := strings.Split(line, " | ")
					if len(fields) != 4 || line != entryLine(0, 0)[:len("2026-11-27T06:30:22.123456Z | ")]+fields[1]+" | POST /v1/chat/completions | 200" {
						t.Fatalf("mangled line %q", line)
					}
					key = fields[1]
				}
				var g, i int
				if _, err := fmt.Sscanf(key, "k%d-%d", &g, &i); err != nil || g < 0 || g >= goroutines {
					t.Fatalf("line with key id %q", key)
				}
				if i != next[g] {
					t.Fatalf("line for k%d-%d where k%d-%d was due", g, i, g, next[g])
				}
				next[g]++
			}
			if st := s.Stats(); st.Written != goroutines*writes || st.Failed != 0 {
				t.Fatalf("Stats = %+v", st)
			}
		})
	}
}

func TestSinkFlush(t *testing.T) {
	// A flush interval that never fires during the test.
	s, path, _ := newTestSink(t, Config{FlushInterval: time.Hour})
	for i := range 3 {
		mustWrite(t, s, entry(0, i))
		if err := s.Flush(); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		lines := readLines(t, path)
		if len(lines) != i+1 || lines[i] != entryLine(0, i) {
			t.Fatalf("after Flush %d: lines %q", i, lines)
		}
	}
	if err := s.Flush(); err != nil { // nothing queued
		t.Fatalf("empty Flush: %v", err)
	}
	if st := s.Stats(); st.Written != 3 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestSinkLineArrivesWithoutFlush(t *testing.T) {
	// The defaults: the batch being filled is written every
	// DefaultFlushInterval, so a line reaches the file by the next tick
	// (docs/operations.md#buffering), without Flush.
	synctest.Test(t, func(t *testing.T) {
		s, path, _ := newTestSink(t, Config{})
		advance(DefaultFlushInterval / 4)
		mustWrite(t, s, entry(0, 0))
		advance(DefaultFlushInterval*3/4 - time.Nanosecond)
		if b := readFile(t, path); len(b) != 0 {
			t.Fatalf("1 ns before the tick: %q in the file, want nothing yet", b)
		}
		advance(time.Nanosecond)
		if b := readFile(t, path); string(b) != entryLine(0, 0)+"\n" {
			t.Fatalf("at the tick: %q in the file, want the line", b)
		}
	})
}

// TestSinkReopen runs in a synctest bubble, as every test here that
// renames the file, fails writes or waits for ticks: the sink's clock
// stands still unless the test moves it, so its automatic check of the
// path (at most every second) cannot switch files behind Reopen's back,
// and its failure reports (at most every 10 s) come as the test expects,
// however slow the machine.
func TestSinkReopen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, path, _ := newTestSink(t, Config{FlushInterval: time.Hour})
		const n = 100
		for i := range n {
			mustWrite(t, s, entry(0, i))
		}
		rotated := path + ".1"
		if err := os.Rename(path, rotated); err != nil {
			t.Fatal(err)
		}
		if err := s.Reopen(); err != nil {
			t.Fatalf("Reopen: %v", err)
		}
		for i := range n {
			mustWrite(t, s, entry(1, i))
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		check := func(path string, g int) {
			t.Helper()
			lines := readLines(t, path)
			if len(lines) != n {
				t.Fatalf("%s: %d lines, want %d", path, len(lines), n)
			}
			for i, line := range lines {
				if line != entryLine(g, i) {
					t.Fatalf("%s line %d = %q, want %q", path, i, line, entryLine(g, i))
				}
			}
		}
		check(rotated, 0)
		check(path, 1)
	})
}

func TestSinkReopenConcurrentWrites(t *testing.T) {
	// Lines written while the file is rotated over and over: every line
	// lands in exactly one of the files.
	s, path, _ := newTestSink(t, Config{BufferLines: 16, BatchBytes: 512})
	const goroutines, writes, rotations = 4, 500, 20
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range writes {
				mustWrite(t, s, entry(g, i))
			}
		})
	}
	var files []string
	for r := range rotations {
		rotated := fmt.Sprintf("%s.%d", path, r)
		if err := os.Rename(path, rotated); err != nil {
			t.Fatal(err)
		}
		files = append(files, rotated)
		if err := s.Reopen(); err != nil {
			t.Fatalf("Reopen: %v", err)
		}
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	files = append(files, path)
	total := 0
	for _, f := range files {
		total += len(readLines(t, f))
	}
	if total != goroutines*writes {
		t.Fatalf("%d lines in all files, want %d", total, goroutines*writes)
	}
}

func TestSinkReopenFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "logs", "a.log")
	s, _, _ := newTestSink(t, Config{Path: path, FlushInterval: time.Hour})
	mustWrite(t, s, entry(0, 0))
	// Replace the directory by a file, so that reopening fails.
	if err := os.Rename(filepath.Dir(path), filepath.Join(dir, "old")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Dir(path), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reopen(); err == nil {
		t.Fatal("Reopen succeeded with the directory gone")
	}
	mustWrite(t, s, entry(0, 1))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	lines := readLines(t, filepath.Join(dir, "old", "a.log"))
	if len(lines) != 2 || lines[1] != entryLine(0, 1) {
		t.Fatalf("old file lines %q", lines)
	}
}

func TestSinkClose(t *testing.T) {
	s, path, _ := newTestSink(t, Config{FlushInterval: time.Hour})
	mustWrite(t, s, entry(0, 0))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close wrote the queued line.
	if lines := readLines(t, path); len(lines) != 1 {
		t.Fatalf("lines %q", lines)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Write(entry(0, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
	if err := s.Flush(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close = %v, want ErrClosed", err)
	}
	if err := s.Reopen(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reopen after Close = %v, want ErrClosed", err)
	}
	if lines := readLines(t, path); len(lines) != 1 {
		t.Fatalf("lines after Close %q", lines)
	}
	if st := s.Stats(); st != (Stats{Written: 1}) {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestSinkWriteNil(t *testing.T) {
	s, _, _ := newTestSink(t, Config{})
	if err := s.Write(nil); !errors.Is(err, ErrNilEntry) {
		t.Fatalf("Write(nil) = %v, want ErrNilEntry", err)
	}
}

func TestSinkCloseConcurrentWithWrites(t *testing.T) {
	// Writers race Close, some of them blocked on a full buffer: Close
	// neither panics nor deadlocks, and every Write that returned nil has
	// its line in the file.
	s, path, _ := newTestSink(t, Config{BufferLines: 1, BatchBytes: 1})
	const goroutines = 16
	var wg sync.WaitGroup
	accepted := make([]int, goroutines)
	started := make(chan struct{}, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			started <- struct{}{}
			for i := 0; ; i++ {
				err := s.Write(entry(g, i))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Write: %v", err)
					return
				}
				accepted[g]++
			}
		})
	}
	for range goroutines {
		<-started
	}
	for s.Stats().Written < 100 {
		if err := s.Flush(); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	want := 0
	for _, n := range accepted {
		want += n
	}
	if lines := readLines(t, path); len(lines) != want {
		t.Fatalf("%d lines, %d Writes returned nil", len(lines), want)
	}
}

func TestSinkBackPressure(t *testing.T) {
	s, path, _ := newTestSink(t, Config{BufferLines: 1})
	const goroutines, writes = 32, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range writes {
				mustWrite(t, s, entry(g, i))
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if lines := readLines(t, path); len(lines) != goroutines*writes {
		t.Fatalf("%d lines, want %d", len(lines), goroutines*writes)
	}
	st := s.Stats()
	if st.Written != goroutines*writes || st.Failed != 0 || st.Waited > goroutines*writes {
		t.Fatalf("Stats = %+v", st)
	}
	t.Logf("Stats = %+v", st)
}

func TestSinkCopiesEntry(t *testing.T) {
	s, path, _ := newTestSink(t, Config{FlushInterval: time.Hour})
	method, p := []byte("POST"), []byte("/v1/completions")
	e := &Entry{Time: fixedTime, KeyID: "alice", Method: method, Path: p, Status: 200}
	mustWrite(t, s, e)
	copy(method, "XXXX")
	copy(p, "/overwritten!!!")
	*e = Entry{}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if lines := readLines(t, path); len(lines) != 1 || lines[0] != "2026-11-27T06:30:22.123456Z | alice | POST /v1/completions | 200" {
		t.Fatalf("lines %q", lines)
	}
}

func TestSinkLongLine(t *testing.T) {
	// A line larger than the batch and than a pooled buffer.
	s, path, _ := newTestSink(t, Config{BatchBytes: 1024})
	long := append([]byte("/"), bytes.Repeat([]byte("a"), 100<<10)...)
	mustWrite(t, s, &Entry{Time: fixedTime, KeyID: "k", Method: []byte("GET"), Path: long, Status: 414})
	mustWrite(t, s, entry(0, 0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 2 || len(lines[0]) != len("2026-11-27T06:30:22.123456Z | k | GET  | 414")+len(long) || lines[1] != entryLine(0, 0) {
		t.Fatalf("%d lines", len(lines))
	}
}
