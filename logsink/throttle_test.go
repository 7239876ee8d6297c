package logsink

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestErrorReporter(t *testing.T) {
	h := &recordingHandler{}
	r := errorReporter{log: slog.New(h), path: "/x.log"}
	t0 := time.Date(2026, 11, 27, 6, 30, 0, 0, time.UTC)
	errFull := errors.New("no space left on device")

	// step reports a failure of lines lines at t0+at and checks whether it
	// was logged, and with which suppressed counts.
	step := func(at time.Duration, lines uint64, wantLogged bool, wantAttrs string) {
		t.Helper()
		before := len(h.Messages())
		if got := r.report(t0.Add(at), errFull, lines); got != wantLogged {
			t.Fatalf("report at %v logged = %v, want %v", at, got, wantLogged)
		}
		msgs := h.Messages()
		if !wantLogged {
			if len(msgs) != before {
				t.Fatalf("report at %v logged %q", at, msgs[before:])
			}
			return
		}
		if len(msgs) != before+1 || !strings.Contains(msgs[before], wantAttrs) {
			t.Fatalf("report at %v: messages %q, want one with %q", at, msgs[before:], wantAttrs)
		}
	}
	step(0, 3, true, "failed_lines=3 suppressed_reports=0 suppressed_failed_lines=0")
	step(time.Second, 4, false, "")
	step(9*time.Second, 5, false, "")
	step(10*time.Second-1, 1, false, "")
	// Exactly 10 s after the last message: logged, with the suppressed.
	step(10*time.Second, 2, true, "failed_lines=2 suppressed_reports=3 suppressed_failed_lines=10")
	step(15*time.Second, 7, false, "")
	// A clock that jumped backwards does not silence reports.
	step(-time.Hour, 1, true, "failed_lines=1 suppressed_reports=1 suppressed_failed_lines=7")
	step(-time.Hour+time.Second, 6, false, "")

	// Close reports what is still suppressed, once.
	if !r.close() {
		t.Fatal("close did not log the suppressed report")
	}
	if msgs := h.Messages(); !strings.Contains(msgs[len(msgs)-1], "suppressed_reports=1 suppressed_failed_lines=6") {
		t.Fatalf("close logged %q", msgs[len(msgs)-1])
	}
	if r.close() {
		t.Fatal("second close logged again")
	}
}
