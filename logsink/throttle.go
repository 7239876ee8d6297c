package logsink

import (
	"log/slog"
	"time"
)

// reportEvery is the shortest time between two write-failure messages.
const reportEvery = 10 * time.Second

// errorReporter reports write failures through a slog.Logger, at most once
// every reportEvery; the next message counts the reports suppressed in
// between. Time is a parameter so that tests use fixed instants. It is
// owned by the writer goroutine and not safe for concurrent use.
type errorReporter struct {
	log  *slog.Logger
	path string

	last            time.Time // when the last message was logged
	logged          bool      // whether any message was logged
	suppressed      uint64    // failures not logged since the last message
	suppressedLines uint64    // lines those failures lost
}

// report records that a write at now failed with err and lost lines lines,
// and logs it unless a message was logged less than reportEvery before now.
// It reports whether it logged. A clock that went backwards counts as
// elapsed time, so a jump never silences reports for long.
func (r *errorReporter) report(now time.Time, err error, lines uint64) bool {
	if r.logged {
		if d := now.Sub(r.last); d >= 0 && d < reportEvery {
			r.suppressed++
			r.suppressedLines += lines
			return false
		}
	}
	r.log.Error("cannot write access log; lines lost",
		slog.String("path", r.path),
		slog.Any("err", err),
		slog.Uint64("failed_lines", lines),
		slog.Uint64("suppressed_reports", r.suppressed),
		slog.Uint64("suppressed_failed_lines", r.suppressedLines))
	r.last, r.logged = now, true
	r.suppressed, r.suppressedLines = 0, 0
	return true
}

// close logs the failures still suppressed, so that none goes unreported
// when the sink closes. It reports whether it logged.
func (r *errorReporter) close() bool {
	if r.suppressed == 0 {
		return false
	}
	r.log.Error("cannot write access log; lines lost (reports suppressed before close)",
		slog.String("path", r.path),
		slog.Uint64("suppressed_reports", r.suppressed),
		slog.Uint64("suppressed_failed_lines", r.suppressedLines))
	r.suppressed, r.suppressedLines = 0, 0
	return true
}
