package logsink

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// checkEvery is the shortest time between two checks that the open file is
// still the one at the configured path.
const checkEvery = time.Second

// openLog creates path's directory if missing and opens path for
// appending, creating it if missing.
func openLog(path string) (*os.File, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create access log directory %q: %w", dir, err)
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open access log %q: %w", path, err)
	}
	return f, nil
}

// writeFile is how the writer hands bytes to the file: (*os.File).Write,
// unless a test injects faults.
func writeFile(f *os.File, b []byte) (int, error) { return f.Write(b) }

// writer is the state of a Sink's writer goroutine, owned by it alone.
type writer struct {
	s      *Sink
	path   string
	f      *os.File
	stdout bool // f is os.Stdout: never synced, closed, checked or reopened
	write1 func(f *os.File, b []byte) (int, error)

	// batch holds whole lines not yet in the file. After a short write,
	// its first off bytes (part of its first line) are already in the
	// current file: the next write continues from there, so the line is
	// completed rather than repeated. A switch to another file sets off
	// to 0, so the new file gets the line whole.
	batch    []byte
	off      int
	lines    uint64 // lines in batch, a partly written first one included
	maxBatch int    // write once batch holds this many bytes
	maxRetry int    // while failing, lines that would grow batch beyond this are dropped
	interval time.Duration

	// failing is set when a write fails and cleared when one succeeds;
	// while it is set, lines only accumulate (up to maxRetry) and are
	// written on the next tick or control request.
	failing bool
	faults  faultReporter

	checked      time.Time // when the file's identity was last checked
	reopenFailed bool      // an automatic reopen failed and was logged

	err error // first write error since the last control request or successful write
}

// run is the writer goroutine: it receives full batches from the Writes
// and writes them, takes the batch being filled on every tick and on
// control requests, until Close closes the batches channel.
func (w *writer) run() {
	ticker := time.NewTicker(w.interval)
	defer ticker.Stop()
	for {
		select {
		case b, ok := <-w.s.q.batches:
			if !ok {
				w.s.closeErr = w.finish()
				close(w.s.done)
				return
			}
			w.add(b)
		case <-ticker.C:
			w.drain()
			w.write()
		case req := <-w.s.ctl:
			req.reply <- w.control(req)
		}
	}
}

// add moves the lines of b, a batch taken from the queue, into the
// writer's batch and releases b to the queue. It writes first if the lines
// would grow a non-empty batch beyond maxBatch, and after when the batch
// holds maxBatch bytes, unless writes are failing: then the lines wait
// for the next tick, and those that would grow the batch beyond maxRetry
// bytes are dropped and counted.
func (w *writer) add(b *batch) {
	if !w.failing && len(w.batch) > 0 && len(w.batch)+len(b.buf) > w.maxBatch {
		w.write()
	}
	switch {
	case len(w.batch) == 0 && (!w.failing || len(b.buf) <= w.maxRetry):
		// The common case: take b's buffer and give the queue ours (empty)
		// instead of copying.
		w.batch, b.buf = b.buf, w.batch
		w.lines = uint64(b.lines)
	case !w.failing || len(w.batch)+len(b.buf) <= w.maxRetry:
		w.batch = append(w.batch, b.buf...)
		w.lines += uint64(b.lines)
	default:
		// Line by line, as each line may or may not fit.
		for p := b.buf; len(p) > 0; {
			i := bytes.IndexByte(p, '\n') + 1
			if i == 0 {
				panic("BUG: logsink: a batch does not end in a newline")
			}
			line := p[:i]
			p = p[i:]
			if len(w.batch)+len(line) > w.maxRetry {
				w.s.failed.Add(1)
				w.faults.drop(1)
				continue
			}
			w.batch = append(w.batch, line...)
			w.lines++
		}
	}
	w.s.q.release(b)
	if w.failing {
		w.s.pending.Store(w.lines)
	} else if len(w.batch) >= w.maxBatch {
		w.write()
	}
}

// drain adds the lines queued when it is called, and no more, so that a
// steady stream of Writes cannot starve a Flush: the full batches in the
// channel, then the batch being filled. This goroutine is the only
// receiver, so the receives cannot block.
func (w *writer) drain() {
	n, cur := w.s.q.takeCurrent()
	for ; n > 0; n-- {
		w.add(<-w.s.q.batches)
	}
	if cur != nil {
		w.add(cur)
	}
}

// write checks that the file is still the one at the path (at most once
// every checkEvery), then hands the batch to write(2). What reached the
// file leaves the batch; on failure the rest stays for the next attempt,
// the failure is counted and reported, and the error is remembered for
// the next control request or Close, until a write succeeds.
func (w *writer) write() {
	if len(w.batch) == 0 {
		return
	}
	now := time.Now()
	w.checkFile(now)
	p := w.batch[w.off:]
	n, err := w.write1(w.f, p)
	n = max(0, min(n, len(p)))
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	// Every line ends in the only '\n' it holds, so the newlines written
	// count the lines completed in the file: all of them when the batch
	// went whole.
	done := w.lines
	if n < len(p) {
		done = min(uint64(bytes.Count(p[:n], newline)), w.lines)
	}
	w.s.written.Add(done)
	w.lines -= done
	if err == nil {
		w.batch, w.off, w.lines = w.batch[:0], 0, 0
		w.err = nil // the lines it concerned are written now
		if w.failing {
			w.failing = false
			w.s.pending.Store(0)
			if cap(w.batch) > w.maxBatch {
				w.batch = make([]byte, 0, w.maxBatch) // release the outage's memory
			}
			w.faults.recover(now)
		}
		return
	}
	if i := bytes.LastIndexByte(p[:n], '\n'); i >= 0 {
		w.batch = w.batch[:copy(w.batch, p[i+1:])]
		w.off = n - (i + 1)
	} else {
		w.off += n
	}
	w.failing = true
	w.s.writeErrors.Add(1)
	w.s.pending.Store(w.lines)
	w.faults.fail(now, err, w.lines, uint64(len(w.batch)))
	err = fmt.Errorf("cannot write access log %q: %w", w.path, err)
	if w.err == nil {
		w.err = err
	}
}

var newline = []byte{'\n'}

// checkFile reopens the path if the open file is no longer there (removed,
// or renamed away, with no Reopen to follow), so that lines do not go to a
// deleted file forever. It checks at most once every checkEvery; when the
// path cannot be examined (other than not existing), it keeps the file.
func (w *writer) checkFile(now time.Time) {
	if w.stdout {
		return
	}
	if d := now.Sub(w.checked); d >= 0 && d < checkEvery {
		return
	}
	w.checked = now
	fi, err := os.Stat(w.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err == nil {
		cur, err := w.f.Stat()
		if err != nil || os.SameFile(fi, cur) {
			return
		}
	}
	f, err := openLog(w.path)
	if err != nil {
		if !w.reopenFailed {
			w.reopenFailed = true
			w.faults.log.Error("access log file was removed or replaced, and its path cannot be opened again; still writing to the old file",
				slog.String("path", w.path), slog.Any("err", err))
		}
		return
	}
	w.reopenFailed = false
	w.s.reopened.Add(1)
	attrs := []any{slog.String("path", w.path)}
	if err := w.switchTo(f); err != nil {
		attrs = append(attrs, slog.Any("close_err", err))
	}
	w.faults.log.Warn("access log file was removed or replaced; reopened its path", attrs...)
}

// takeErr returns the remembered write error and forgets it.
func (w *writer) takeErr() error {
	err := w.err
	w.err = nil
	return err
}

// control serves a Flush or Reopen request.
func (w *writer) control(req ctlRequest) error {
	w.drain()
	w.write()
	err := w.takeErr()
	if req.reopen {
		err = errors.Join(err, w.reopen())
	}
	return err
}

// reopen opens the file at w.path again and switches to it; the old file
// is synced and closed. If the open fails the old file stays in use.
func (w *writer) reopen() error {
	if w.stdout {
		return nil
	}
	f, err := openLog(w.path)
	if err != nil {
		return err
	}
	return w.switchTo(f)
}

// switchTo makes f the file written to, and syncs and closes the old one.
// A line partly written to the old file will be written whole to f.
func (w *writer) switchTo(f *os.File) error {
	old := w.f
	w.f = f
	w.off = 0
	w.checked = time.Now()
	return w.closeFile(old)
}

// closeFile fsyncs and closes f.
func (w *writer) closeFile(f *os.File) error {
	var errs []error
	if err := f.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("cannot sync access log %q: %w", w.path, err))
	}
	if err := f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("cannot close access log %q: %w", w.path, err))
	}
	return errors.Join(errs...)
}

// finish writes what is left once the batches channel is closed and
// drained (one attempt), the batch being filled included, counts the
// lines that still could not be written as failed, reports what was not
// reported yet, then syncs and closes the file.
func (w *writer) finish() error {
	w.drain()
	w.write()
	lost := w.lines
	if lost > 0 {
		w.s.failed.Add(lost)
		w.s.pending.Store(0)
		w.batch, w.off, w.lines = w.batch[:0], 0, 0
	}
	w.faults.close(lost)
	err := w.takeErr()
	if !w.stdout {
		err = errors.Join(err, w.closeFile(w.f))
	}
	return err
}
