package loadgen

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// readResult is what an eventReader made of a whole response.
type readResult struct {
	status int
	events int
	done   bool
	end    bool
	close  bool
	err    bool
}

// readAll feeds resp to a fresh eventReader in pieces of at most size
// bytes (0: at once), then the end of the connection if eof.
func readAll(resp string, size int, eof bool) readResult {
	var r eventReader
	var o readResult
	b := []byte(resp)
	for len(b) > 0 {
		n := len(b)
		if size > 0 {
			n = min(size, n)
		}
		ev, end, err := r.feed(b[:n])
		o.events += ev
		o.end = end
		if err != nil {
			o.err = true
			break
		}
		b = b[n:]
	}
	if eof && !o.err {
		o.end = r.eof()
	}
	if o.events != r.events {
		panic(fmt.Sprintf("BUG: feed returned %d events in all, the reader counted %d", o.events, r.events))
	}
	o.status, o.done, o.close = r.status, r.done, r.close
	return o
}

// chunked frames body as one chunk per piece.
func chunked(pieces ...string) string {
	var b strings.Builder
	for _, p := range pieces {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(p), p)
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

const sseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

func TestEventReader(t *testing.T) {
	f := func(resp string, eof bool, want readResult) {
		t.Helper()
		// The same readResult whatever the reads' sizes: at once, a byte at
		// a time, and every size between that cuts somewhere new.
		for _, size := range []int{0, 1, 2, 3, 5, 7, 16, 64} {
			if got := readAll(resp, size, eof); got != want {
				t.Fatalf("reads of %d bytes: %+v, want %+v\n%.300q", size, got, want, resp)
			}
		}
	}
	ev := func(i int) string { return fmt.Sprintf("data: {\"i\":%d}\n\n", i) }
	done := "data: [DONE]\n\n"

	// The mock's stream: an event and a chunk each, [DONE] last.
	f(sseHead+chunked(ev(0), ev(1), ev(2), done), false, readResult{status: 200, events: 3, done: true, end: true})
	// Events across chunks and several in one, as a proxy may pass them.
	f(sseHead+chunked(ev(0)+ev(1)[:5], ev(1)[5:]+ev(2)+"data: [DO", "NE]\n", "\n"), false,
		readResult{status: 200, events: 3, done: true, end: true})
	// CRLF line ends, a comment, blank lines before an event, an event of
	// two lines, a named event.
	f(sseHead+chunked(": ping\r\n\r\n", "\r\n\r\ndata: a\r\ndata: b\r\n\r\n", "event: x\ndata: y\n\n", "data: [DONE]\r\n\r\n"), false,
		readResult{status: 200, events: 2, done: true, end: true})
	// Truncated: the body ends without [DONE]; "data: [DONE]x" is not it.
	f(sseHead+chunked(ev(0), ev(1)), false, readResult{status: 200, events: 2, end: true})
	f(sseHead+chunked("data: [DONE]x\n\n"), false, readResult{status: 200, events: 1, end: true})
	// The connection ends mid-stream: no end.
	f(sseHead+"20\r\n"+ev(0), true, readResult{status: 200, events: 1})
	// A Content-Length body, and one that ends with the connection.
	body := ev(0) + ev(1) + done
	f(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body), false,
		readResult{status: 200, events: 2, done: true, end: true})
	f("HTTP/1.0 200 OK\r\n\r\n"+body, false, readResult{status: 200, events: 2, done: true, close: true})
	f("HTTP/1.0 200 OK\r\n\r\n"+body, true, readResult{status: 200, events: 2, done: true, end: true, close: true})
	f("HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"+chunked(ev(0), done), false,
		readResult{status: 200, events: 1, done: true, end: true, close: true})
	// An error answer: its status, no event.
	f("HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\n{}", false, readResult{status: 429, end: true})
	f("HTTP/1.1 204 No Content\r\n\r\n", false, readResult{status: 204, end: true})
	// Malformed.
	f("SSH-2.0-OpenSSH\r\n", false, readResult{err: true})
	f("HTTP/1.1 200 OK\r\nno colon\r\n\r\n", false, readResult{status: 200, err: true})
	f(sseHead+"zz\r\n", false, readResult{status: 200, err: true})
	f(sseHead+"2\r\nabXY\r\n", false, readResult{status: 200, err: true})
	f(sseHead+"0\r\n\r\nHTTP/1.1", false, readResult{status: 200, end: true, err: true}) // bytes after the end
	f("HTTP/1.1 200 OK\r\nX: "+strings.Repeat("a", maxHeadLine)+"\r\n\r\n", false, readResult{status: 200, err: true})
}

// TestEventReaderReset: one reader follows responses one after another
// on a kept-alive connection.
func TestEventReaderReset(t *testing.T) {
	var r eventReader
	resp := []byte(sseHead + chunked("data: 1\n\n", "data: [DONE]\n\n"))
	for i := range 3 {
		ev, end, err := r.feed(resp)
		if ev != 1 || !end || err != nil || !r.done || r.status != 200 {
			t.Fatalf("response %d: %d events, end %v, err %v, done %v, status %d", i, ev, end, err, r.done, r.status)
		}
		r.reset()
	}
	if _, _, err := r.feed([]byte("HTTP/1.1 99")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.feed([]byte("x OK\r\n")); !errors.Is(err, errBody) {
		t.Fatalf("status 99x: error %v, want errBody", err)
	}
}

// TestEventReaderStamps: the reader takes the upstream's time from the
// events that open with it, however the reads cut them, and from no other.
func TestEventReaderStamps(t *testing.T) {
	ev := func(ns string) string { return `data: {"sent_at_ns":` + ns + `,"id":"x"}` + "\n\n" }
	body := ev("1765000000000000001") + // stamped
		`data: {"id":"y"}` + "\n\n" + // not stamped
		ev("17650000000000x0002") + // not digits
		`data: {"sent_at_ns":1765000000000000003` + "\n\n" + // the line ends with the digits
		": " + ev("1765000000000000004")[2:] + // a comment: not an event
		ev("1765000000000000005") +
		"data: [DONE]\n\n"
	resp := sseHead + chunked(body)
	want := []int64{1765000000000000001, 1765000000000000003, 1765000000000000005}
	for _, size := range []int{0, 1, 3, 7, 19, 40, 64} {
		var r eventReader
		var got []int64
		b := []byte(resp)
		for len(b) > 0 {
			n := len(b)
			if size > 0 {
				n = min(size, n)
			}
			if _, _, err := r.feed(b[:n]); err != nil {
				t.Fatal(err)
			}
			got = append(got, r.stamps...)
			r.stamps = r.stamps[:0]
			b = b[n:]
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || r.events != 5 || !r.done {
			t.Fatalf("reads of %d bytes: stamps %v, %d events, done %v; want %v, 5 events, done", size, got, r.events, r.done, want)
		}
	}
}
