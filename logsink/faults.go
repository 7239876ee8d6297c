package logsink

import (
	"log/slog"
	"time"
)

// reportEvery is the shortest time between two write-failure messages.
const reportEvery = 10 * time.Second

// faultReporter reports the writer's disk faults through a slog.Logger:
// a failed write at most once every reportEvery, the next message counting
// the failures and dropped lines in between; the end of an outage whose
// failure was logged; lines lost at close. Time is a parameter so that
// tests use fixed instants. It is owned by the writer goroutine and not
// safe for concurrent use.
type faultReporter struct {
	log  *slog.Logger
	path string

	last    time.Time // when the last failure message was logged
	logged  bool      // whether any failure message was logged
	errors  uint64    // failed writes since the last failure message
	dropped uint64    // lines dropped since the last failure message

	// The current outage: from the first failed write to the next write
	// that succeeds.
	failing      bool
	outageStart  time.Time
	outageErrors uint64
	outageDrops  uint64
	outageLogged bool // whether a failure message of this outage was logged
}

// fail records that a write at now failed with err, pendingLines
// (pendingBytes) being kept to retry, and logs it unless a failure message
// was logged less than reportEvery before now. It reports whether it
// logged. A clock that went backwards counts as elapsed time, so a jump
// never silences reports for long.
func (r *faultReporter) fail(now time.Time, err error, pendingLines, pendingBytes uint64) bool {
	if !r.failing {
		r.failing = true
		r.outageStart = now
		r.outageErrors, r.outageDrops, r.outageLogged = 0, 0, false
	}
	r.outageErrors++
	r.errors++
	if r.logged {
		if d := now.Sub(r.last); d >= 0 && d < reportEvery {
			return false
		}
	}
	r.log.Error("cannot write access log; keeping its lines in memory to retry",
		slog.String("path", r.path),
		slog.Any("err", err),
		slog.Uint64("pending_lines", pendingLines),
		slog.Uint64("pending_bytes", pendingBytes),
		slog.Uint64("write_errors", r.errors),
		slog.Uint64("dropped_lines", r.dropped))
	r.last, r.logged, r.outageLogged = now, true, true
	r.errors, r.dropped = 0, 0
	return true
}

// drop records that lines lines were dropped because the retry buffer was
// full. The next failure message (or close) reports them.
func (r *faultReporter) drop(lines uint64) {
	r.dropped += lines
	r.outageDrops += lines
}

// recover records that a write at now succeeded. If it ends an outage
// whose failure was logged, it logs the recovery and reports true; the
// recovery of an outage whose failures were all suppressed is not logged
// (the next failure message counts them), so a flapping disk logs at most
// two messages every reportEvery.
func (r *faultReporter) recover(now time.Time) bool {
	if !r.failing {
		return false
	}
	r.failing = false
	if !r.outageLogged {
		return false
	}
	r.log.Info("access log writable again; lines kept in memory written",
		slog.String("path", r.path),
		slog.Duration("outage", now.Sub(r.outageStart)),
		slog.Uint64("write_errors", r.outageErrors),
		slog.Uint64("dropped_lines", r.outageDrops))
	// The last failure message was of this outage, so this one covers
	// everything counted since.
	r.errors, r.dropped = 0, 0
	return true
}

// close records that lost lines were still unwritten when the sink closed,
// and logs them together with the failures and drops not reported yet, so
// that none goes unreported. It reports whether it logged.
func (r *faultReporter) close(lost uint64) bool {
	if lost == 0 && r.errors == 0 && r.dropped == 0 {
		return false
	}
	msg := "cannot write access log at close; lines lost"
	if lost == 0 {
		msg = "access log write failures not reported before close"
	}
	r.log.Error(msg,
		slog.String("path", r.path),
		slog.Uint64("lost_lines", lost),
		slog.Uint64("write_errors", r.errors),
		slog.Uint64("dropped_lines", r.dropped))
	r.errors, r.dropped = 0, 0
	return true
}
