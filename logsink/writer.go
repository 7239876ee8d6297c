package logsink

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

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

// writer is the state of a Sink's writer goroutine, owned by it alone.
type writer struct {
	s        *Sink
	path     string
	f        *os.File
	stdout   bool // f is os.Stdout: never synced, closed or reopened
	batch    []byte
	lines    uint64 // lines in batch
	maxBatch int    // write once batch holds this many bytes
	interval time.Duration
	errs     errorReporter
	err      error // first write error since the last control request
}

// run is the writer goroutine: it receives lines into the batch and writes
// the batch when it is full, on every tick and on control requests, until
// Close closes the lines channel.
func (w *writer) run() {
	ticker := time.NewTicker(w.interval)
	defer ticker.Stop()
	for {
		select {
		case bp, ok := <-w.s.lines:
			if !ok {
				w.s.closeErr = w.finish()
				close(w.s.done)
				return
			}
			w.add(bp)
		case <-ticker.C:
			w.write()
		case req := <-w.s.ctl:
			req.reply <- w.control(req)
		}
	}
}

// add appends the line in bp to the batch, returns bp to the pool, and
// writes the batch when it is full.
func (w *writer) add(bp *[]byte) {
	line := *bp
	if len(w.batch) > 0 && len(w.batch)+len(line) > cap(w.batch) {
		w.write()
	}
	w.batch = append(w.batch, line...)
	w.lines++
	w.s.putLine(bp)
	if len(w.batch) >= w.maxBatch {
		w.write()
	}
}

// drain adds the lines queued when it is called, and no more, so that a
// steady stream of Writes cannot starve a Flush. This goroutine is the only
// receiver, so the receives cannot block.
func (w *writer) drain() {
	for n := len(w.s.lines); n > 0; n-- {
		w.add(<-w.s.lines)
	}
}

// write hands the batch to write(2) and empties it. On failure it counts
// the lines that did not reach the file as failed, reports them, and
// remembers the error for the next control request or Close.
func (w *writer) write() {
	if len(w.batch) == 0 {
		return
	}
	n, err := w.f.Write(w.batch)
	if err != nil {
		// Every line ends in the only '\n' it holds, so the newlines
		// written count the complete lines that reached the file.
		ok := min(uint64(bytes.Count(w.batch[:n], newline)), w.lines)
		w.s.written.Add(ok)
		w.s.failed.Add(w.lines - ok)
		err = fmt.Errorf("cannot write access log %q: %w", w.path, err)
		w.errs.report(time.Now(), err, w.lines-ok)
		if w.err == nil {
			w.err = err
		}
	} else {
		w.s.written.Add(w.lines)
	}
	w.batch = w.batch[:0]
	w.lines = 0
}

var newline = []byte{'\n'}

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
	old := w.f
	w.f = f
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

// finish writes what is left once the lines channel is closed and drained,
// then syncs and closes the file.
func (w *writer) finish() error {
	w.write()
	w.errs.close()
	err := w.takeErr()
	if !w.stdout {
		err = errors.Join(err, w.closeFile(w.f))
	}
	return err
}
