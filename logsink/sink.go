package logsink

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultBufferLines   = 65536
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultBatchBytes    = 64 << 10
	DefaultRetryBytes    = 16 << 20
)

// maxPooledLine is the capacity above which a line buffer is not returned
// to the pool, so that one huge line does not pin its memory.
const maxPooledLine = 64 << 10

// Config configures a Sink. Only Path is required; every other zero field
// takes the default it names.
type Config struct {
	// Path is the log file; "-" means standard output. The file's directory
	// is created (0o755) if missing, and the file is opened for appending,
	// created 0o644 if missing. Required.
	Path string
	// Format is the line format; the zero value is FormatText.
	Format Format
	// BufferLines bounds the lines queued for the writer goroutine: lines
	// whose Write returned and that the writer has not taken yet, in the
	// batch being filled or in full batches handed to the writer. Write
	// blocks while that many are queued. Zero means DefaultBufferLines.
	BufferLines int
	// FlushInterval is the longest a line waits in memory between its
	// Write and write(2) while writes succeed: on every tick the writer
	// goroutine takes the batch being filled, however full. Zero means
	// DefaultFlushInterval.
	FlushInterval time.Duration
	// BatchBytes is the size of a batch: Write appends lines to the
	// current batch and hands it to the writer goroutine once it holds
	// BatchBytes (or a line does not fit), and the writer calls write(2)
	// without waiting for FlushInterval once it holds that many bytes. A
	// line longer than BatchBytes is a batch of its own. Zero means
	// DefaultBatchBytes.
	BatchBytes int
	// RetryBytes bounds the memory that keeps lines while write(2) fails
	// (disk full, I/O error): lines arriving when that many bytes wait
	// already are dropped and counted in Stats.Failed. Zero means
	// DefaultRetryBytes (16 MiB, about 150,000 text lines); a value below
	// BatchBytes is raised to BatchBytes.
	RetryBytes int
	// ErrorLog receives write failures (at most one message every 10 s,
	// counting the failures and dropped lines since the previous one), the
	// recovery that ends them, and automatic reopens of a removed file.
	// Nil means slog.Default().
	ErrorLog *slog.Logger
}

// Stats are a Sink's counters since New. Lines the writer goroutine has
// taken from the queue are Written, Failed, Pending, or in its batch not
// yet handed to write(2).
type Stats struct {
	// Written counts lines write(2) accepted (whole: a line cut by a short
	// write counts once its newline is written).
	Written uint64
	// Failed counts lines lost: dropped because RetryBytes were waiting
	// already while writes failed, or still unwritten when Close gave up.
	// Each is reported through Config.ErrorLog.
	Failed uint64
	// Waited counts Writes that found Config.BufferLines lines queued and
	// blocked.
	Waited uint64
	// WriteErrors counts failed write(2) calls; a write retried on every
	// tick of an outage counts each time.
	WriteErrors uint64
	// Pending is the number of lines kept in memory after a failed write,
	// waiting for the next attempt; 0 when writes succeed.
	Pending uint64
	// Reopened counts the times the sink reopened its path by itself
	// because the file had been removed or replaced (Reopen calls are not
	// counted).
	Reopened uint64
}

// Sink is an access log: Write formats an Entry into one line and appends
// it to the current batch, which is handed whole to a writer goroutine
// that writes it to the file (see the package comment for the delivery
// policy). Create it with New and stop it with Close; the zero Sink is not
// usable. All methods are safe for concurrent use, with each other and
// with Close.
type Sink struct {
	format Format
	pool   sync.Pool // of *lineBuf

	// q holds the lines between Write and the writer goroutine. Close
	// closes it: every line it accepted is taken by the writer before the
	// writer exits.
	q queue

	ctl       chan ctlRequest // Flush and Reopen requests to the writer
	done      chan struct{}   // closed when the writer goroutine has exited
	closeOnce sync.Once
	closeErr  error // set by the writer goroutine before done is closed

	// Updated by the writer goroutine, once a batch, or once a line while
	// writes fail.
	written     atomic.Uint64
	failed      atomic.Uint64
	writeErrors atomic.Uint64
	pending     atomic.Uint64
	reopened    atomic.Uint64
}

// ctlRequest asks the writer goroutine to write everything queued and, if
// reopen is set, to reopen the file; the result goes to reply, which has
// room for it.
type ctlRequest struct {
	reopen bool
	reply  chan error
}

// New validates cfg, opens the log file and starts the writer goroutine.
// Errors for a bad cfg wrap ErrInvalidConfig; the caller must Close the
// returned Sink to stop the goroutine and release the file.
func New(cfg Config) (*Sink, error) {
	return newSink(cfg, testHooks{})
}

// testHooks lets tests inject faults into a Sink's writer; the zero value
// is the real thing.
type testHooks struct {
	// write replaces (*os.File).Write for every write of a batch.
	write func(f *os.File, b []byte) (int, error)
}

// newSink is New with test hooks.
func newSink(cfg Config, hooks testHooks) (*Sink, error) {
	switch {
	case cfg.Path == "":
		return nil, fmt.Errorf("%w: Path is empty", ErrInvalidConfig)
	case !cfg.Format.valid():
		return nil, fmt.Errorf("%w: unknown Format %d", ErrInvalidConfig, cfg.Format)
	case cfg.BufferLines < 0:
		return nil, fmt.Errorf("%w: negative BufferLines %d", ErrInvalidConfig, cfg.BufferLines)
	case cfg.FlushInterval < 0:
		return nil, fmt.Errorf("%w: negative FlushInterval %s", ErrInvalidConfig, cfg.FlushInterval)
	case cfg.BatchBytes < 0:
		return nil, fmt.Errorf("%w: negative BatchBytes %d", ErrInvalidConfig, cfg.BatchBytes)
	case cfg.RetryBytes < 0:
		return nil, fmt.Errorf("%w: negative RetryBytes %d", ErrInvalidConfig, cfg.RetryBytes)
	}
	if cfg.BufferLines == 0 {
		cfg.BufferLines = DefaultBufferLines
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.BatchBytes == 0 {
		cfg.BatchBytes = DefaultBatchBytes
	}
	if cfg.RetryBytes == 0 {
		cfg.RetryBytes = DefaultRetryBytes
	}
	cfg.RetryBytes = max(cfg.RetryBytes, cfg.BatchBytes)
	if cfg.ErrorLog == nil {
		cfg.ErrorLog = slog.Default()
	}
	if hooks.write == nil {
		hooks.write = writeFile
	}

	var f *os.File
	if cfg.Path == "-" {
		f = os.Stdout
	} else {
		var err error
		if f, err = openLog(cfg.Path); err != nil {
			return nil, err
		}
	}

	s := &Sink{
		format: cfg.Format,
		ctl:    make(chan ctlRequest),
		done:   make(chan struct{}),
	}
	s.q.init(cfg.BufferLines, cfg.BatchBytes)
	s.pool.New = func() any { return &lineBuf{b: make([]byte, 0, 256)} }
	w := &writer{
		s:        s,
		path:     cfg.Path,
		f:        f,
		stdout:   cfg.Path == "-",
		write1:   hooks.write,
		batch:    make([]byte, 0, cfg.BatchBytes),
		maxBatch: cfg.BatchBytes,
		maxRetry: cfg.RetryBytes,
		interval: cfg.FlushInterval,
		faults:   faultReporter{log: cfg.ErrorLog, path: cfg.Path},
		checked:  time.Now(),
	}
	go w.run()
	return s, nil
}

// Write formats e as one line and queues it for the writer goroutine. It
// copies everything it keeps, so e and the memory its slices point to may
// be reused as soon as Write returns.
//
// Write never drops a line: while Config.BufferLines lines are queued it
// blocks until the writer makes room. It returns nil once the line is
// queued (a later write failure is retried, counted in Stats and reported
// through Config.ErrorLog, not returned here), ErrClosed once Close has
// begun, and ErrNilEntry for a nil e. It formats the line before taking
// a lock, holds the queue's mutex only to copy the line into the current
// batch, and wakes the writer goroutine only when it hands a batch over.
// It does not allocate in steady state.
func (s *Sink) Write(e *Entry) error {
	if e == nil {
		return ErrNilEntry
	}
	lb := s.pool.Get().(*lineBuf)
	lb.b = appendLine(lb.b[:0], s.format, e, &lb.ts)
	queued := s.q.add(lb.b)
	s.putLine(lb)
	if !queued {
		return ErrClosed
	}
	return nil
}

// lineBuf is a buffer Write formats a line in, with the timestamp's second
// of the last line formatted in it (the pool hands a goroutine back the
// buffer it used last, most of the time).
type lineBuf struct {
	b  []byte
	ts stamp
}

// putLine returns a line buffer to the pool once its bytes are copied.
func (s *Sink) putLine(lb *lineBuf) {
	if cap(lb.b) <= maxPooledLine {
		s.pool.Put(lb)
	}
}

// Flush returns once every line whose Write returned before the call has
// been handed to write(2) (no fsync), lines kept from failed writes
// included. It returns an error if a write failed since the previous Flush
// or Reopen and none has succeeded since (the lines it could not write are
// pending, see Stats), and ErrClosed once Close has finished or is
// finishing (Close writes every line itself).
func (s *Sink) Flush() error {
	return s.control(ctlRequest{})
}

// Reopen writes every queued line to the current file, then opens the file
// at the configured path again and closes the old one, for log rotation
// (SIGUSR1): lines whose Write returned before the call go to the old file,
// the following ones to the new file, and none is lost (if writes to the
// old file are failing, its pending lines go to the new file, a line cut
// short in the old file written there whole). If the new file
// cannot be opened, the old one stays in use and the error is returned. It
// does nothing more than Flush for standard output, and returns ErrClosed
// once Close has finished or is finishing.
func (s *Sink) Reopen() error {
	return s.control(ctlRequest{reopen: true})
}

// control passes req to the writer goroutine and waits for its answer.
func (s *Sink) control(req ctlRequest) error {
	req.reply = make(chan error, 1)
	select {
	case s.ctl <- req:
		return <-req.reply
	case <-s.done:
		return ErrClosed
	}
}

// Close stops accepting lines (Write returns ErrClosed from then on),
// writes every line already accepted, fsyncs and closes the file (standard
// output is neither synced nor closed), and stops the writer goroutine.
// It tries a failing write once more; lines it still cannot write are
// counted in Stats.Failed and reported.
// Writes blocked on a full queue complete before Close does. It returns the
// errors of those last steps, and of any write that failed since the last
// Flush or Reopen with no successful write since. Close is idempotent: later calls wait for the first to
// finish and return the same error.
func (s *Sink) Close() error {
	s.closeOnce.Do(s.q.close)
	<-s.done
	return s.closeErr
}

// Stats returns the Sink's counters. It may be called at any time,
// concurrently with everything else, including after Close.
func (s *Sink) Stats() Stats {
	return Stats{
		Written:     s.written.Load(),
		Failed:      s.failed.Load(),
		Waited:      s.q.waited.Load(),
		WriteErrors: s.writeErrors.Load(),
		Pending:     s.pending.Load(),
		Reopened:    s.reopened.Load(),
	}
}
