package logsink

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestFaultReporter(t *testing.T) {
	h := &recordingHandler{}
	r := faultReporter{log: slog.New(h), path: "/x.log"}
	t0 := time.Date(2026, 11, 27, 6, 30, 0, 0, time.UTC)
	errFull := errors.New("no space left on device")

	// check runs fn and checks what it logged: nothing when want is "",
	// else one message containing want.
	check := func(what string, logged bool, want string) {
		t.Helper()
		msgs := h.Messages()
		h.reset()
		if want == "" {
			if logged || len(msgs) != 0 {
				t.Fatalf("%s: logged = %v, messages %q, want none", what, logged, msgs)
			}
			return
		}
		if !logged || len(msgs) != 1 || !strings.Contains(msgs[0], want) {
			t.Fatalf("%s: logged = %v, messages %q, want one with %q", what, logged, msgs, want)
		}
	}
	fail := func(at time.Duration, pending uint64, want string) {
		t.Helper()
		check("fail at "+at.String(), r.fail(t0.Add(at), errFull, pending, pending*100), want)
	}
	recover := func(at time.Duration, want string) {
		t.Helper()
		check("recover at "+at.String(), r.recover(t0.Add(at)), want)
	}

	// An outage: the first failure is logged, the next ones within 10 s
	// are counted, with the lines dropped meanwhile.
	fail(0, 3, "keeping its lines in memory to retry path=/x.log err=no space left on device pending_lines=3 pending_bytes=300 write_errors=1 dropped_lines=0")
	fail(time.Second, 4, "")
	r.drop(5)
	fail(9*time.Second, 5, "")
	fail(10*time.Second-1, 5, "")
	// Exactly 10 s after the last message: logged, with the suppressed.
	r.drop(2)
	fail(10*time.Second, 6, "pending_lines=6 pending_bytes=600 write_errors=4 dropped_lines=7")
	fail(15*time.Second, 6, "")
	// The recovery of a logged outage is logged, with the whole outage.
	recover(16*time.Second, "access log writable again; lines kept in memory written path=/x.log outage=16s write_errors=6 dropped_lines=7")
	recover(17*time.Second, "") // no outage

	// A second outage within 10 s of the last failure message: neither
	// its failure nor its recovery is logged (a flapping disk), but the
	// next failure message counts its failures (and not those of the
	// first outage, which its recovery message counted).
	fail(18*time.Second, 1, "")
	fail(18*time.Second+200*time.Millisecond, 1, "")
	recover(19*time.Second, "")
	fail(20*time.Second, 2, "write_errors=3 dropped_lines=0")
	recover(21*time.Second, "outage=1s write_errors=1 dropped_lines=0")

	// A clock that jumped backwards does not silence reports.
	fail(-time.Hour, 1, "write_errors=1 dropped_lines=0")
	fail(-time.Hour+time.Second, 6, "")
	r.drop(1)

	// Close reports what is still unreported, once.
	check("close", r.close(9), "cannot write access log at close; lines lost path=/x.log lost_lines=9 write_errors=1 dropped_lines=1")
	check("second close", r.close(0), "")
	r.drop(2)
	check("close after a drop", r.close(0), "write failures not reported before close path=/x.log lost_lines=0 write_errors=0 dropped_lines=2")
}
