package loadgen

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authgate/authgate/bench/internal/rawhttp"
	"github.com/authgate/authgate/mockupstream"
)

// startMock serves a real mock upstream on loopback until the test ends:
// streams of events events ("data: [DONE]" not counted), gap apart.
func startMock(t *testing.T, events int, gap time.Duration) string {
	t.Helper()
	m := mockupstream.New(mockupstream.Config{StreamChunks: events - 2, ChunkDelay: gap})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(ln)
	t.Cleanup(func() { m.Shutdown() })
	return ln.Addr().String()
}

// TestStreamsMock: a small real run, 20 streams at once against the mock
// upstream, every stream complete.
func TestStreamsMock(t *testing.T) {
	const events, gap = 8, 5 * time.Millisecond
	addr := startMock(t, events, gap)
	s := &Streams{Addr: addr, Request: rawhttp.Request(addr, chatPath, "", streamBody), Conns: 20, Events: events,
		Start: time.Now().Add(10 * time.Millisecond), Ramp: 50 * time.Millisecond, Plateau: 300 * time.Millisecond}
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Truncated != 0 {
		t.Fatalf("%d errors, %d truncated; first error: %s", res.Errors, res.Truncated, res.FirstErr)
	}
	// Each connection streams until the window's end, so each completes
	// at least one stream, which started in the window. However slow the
	// machine, no more events arrive in the window than the streams
	// carried.
	if res.Conns != 20 || res.Completed < 20 || res.Measured < 1 || res.Measured > res.Completed {
		t.Errorf("%d connections, %d streams completed, %d measured", res.Conns, res.Completed, res.Measured)
	}
	if res.Events < 1 || res.Events > res.Completed*events || res.EventsPerSec <= 0 {
		t.Errorf("%d events in the window (%.0f/s) of %d streams of %d", res.Events, res.EventsPerSec, res.Completed, events)
	}
	// The largest gap is the upstream's pace or more (a late read
	// shortens the gap after it, never the largest of them all).
	if res.TTFE50 <= 0 || res.TTFE50 > res.TTFE99 || res.TTFE99 > res.TTFEMax ||
		res.Gap50 > res.Gap99 || res.Gap99 > res.GapMax || res.GapMax < float64(gap/time.Microsecond) {
		t.Errorf("first event %v/%v/%v µs, gaps %v/%v/%v µs (p50/p99/max); want ordered, the largest gap at least %v",
			res.TTFE50, res.TTFE99, res.TTFEMax, res.Gap50, res.Gap99, res.GapMax, gap)
	}
	if res.GenCPU < 0 || res.GenCPUEvent < 0 {
		t.Errorf("generator CPU %v cores, %v µs per event", res.GenCPU, res.GenCPUEvent)
	}
	// The mock does not stamp its events: none is timed on its way
	// (eventsrv's TestLoad has an upstream that does).
	if res.Stamped != 0 || res.Transit50 != 0 || res.TransitMax != 0 {
		t.Errorf("%d events stamped, on their way %v/%v µs (p50/max); want none", res.Stamped, res.Transit50, res.TransitMax)
	}
}

// rawServer answers every connection on a loopback port, until the test
// ends, with resp once its request's head has arrived, then closes it.
func rawServer(t *testing.T, resp string) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				c.Write([]byte(resp))
			}()
		}
	}()
	return ln.Addr().String()
}

// TestStreamsFailing: a run against servers whose every stream fails, or
// is truncated, counts each and completes none.
func TestStreamsFailing(t *testing.T) {
	f := func(resp string, wantErr string) {
		t.Helper()
		addr := rawServer(t, resp)
		s := &Streams{Addr: addr, Request: rawhttp.Request(addr, chatPath, "", streamBody), Conns: 3, Events: 2,
			Start: time.Now(), Ramp: 10 * time.Millisecond, Plateau: 100 * time.Millisecond}
		res, err := s.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.Completed != 0 || res.Measured != 0 || res.Failed() < 3 {
			t.Fatalf("%d completed, %d measured, %d failed; want none, none, at least one a connection", res.Completed, res.Measured, res.Failed())
		}
		if wantErr == "" && (res.Errors != 0 || res.Truncated != res.Failed()) ||
			wantErr != "" && (res.Truncated != 0 || !strings.Contains(res.FirstErr, wantErr)) {
			t.Fatalf("%d errors (first %q), %d truncated; want error %q", res.Errors, res.FirstErr, res.Truncated, wantErr)
		}
	}
	f("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}", "status 503")
	f(sseHead+chunked("data: 1\n\n", "data: [DONE]\n\n"), "") // an event short, then closed: reopened
	f(sseHead+"a\r\ndata: 1\n\n", "connection closed after 1 events")

	// Nobody listening: the opening fails, and is counted.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Streams{Addr: addr, Request: []byte("GET / HTTP/1.1\r\n\r\n"), Conns: 1, Events: 1,
		Start: time.Now(), Plateau: 100 * time.Millisecond}
	res, err := s.Run(context.Background())
	if err != nil || res.Errors < 1 || res.Completed+res.Truncated != 0 || !strings.Contains(res.FirstErr, "connection refused") || res.ErrorKinds["connect"] != res.Errors {
		t.Fatalf("nobody listening: %+v, %v", res, err)
	}
}

// TestStreamAccounting: how one stream is judged from the reads of its
// response, and counted.
func TestStreamAccounting(t *testing.T) {
	const want = 3
	ev := "data: {}\n\n"
	done := "data: [DONE]\n\n"
	sent := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	from, to := sent.Add(-time.Second), sent.Add(time.Minute)
	f := func(resp string, eof bool, wantOutcome outcome, wantKind, wantErr string, wantGaps int) {
		t.Helper()
		var st streamStat
		st.want = want
		st.begin(sent)
		// 7 bytes a read, 1 ms apart: events cut across reads.
		b, now, end := []byte(resp), sent, false
		for len(b) > 0 && !end {
			n := min(7, len(b))
			now = now.Add(time.Millisecond)
			end = st.onRead(b[:n], now, from, to)
			b = b[n:]
		}
		if !end && eof {
			st.onEOF()
			end = true
		}
		if !end || st.outcome != wantOutcome || len(st.gaps) != wantGaps ||
			(wantErr == "") != (st.err == nil) || st.err != nil && !strings.Contains(st.err.Error(), wantErr) {
			t.Fatalf("ended %v: outcome %d, error %v, %d gaps; want %d, %q, %d", end, st.outcome, st.err, len(st.gaps), wantOutcome, wantErr, wantGaps)
		}
		if wantGaps > 0 && (st.ttfe <= 0 || st.events != int64(wantGaps+1)) {
			t.Fatalf("first event after %v, %d events in the window", st.ttfe, st.events)
		}

		// Counted once in the window, once sent after it: the outcome
		// both times, the times only of a completed stream of the window.
		var tl streamTally
		tl.add(&st, from, to)
		tl.add(&st, to, to.Add(time.Hour))
		counts := [3]int64{tl.completed, tl.truncated, tl.errs}
		if counts[wantOutcome] != 2 || counts[0]+counts[1]+counts[2] != 2 || tl.events != 2*st.events {
			t.Fatalf("counted completed, truncated, failed: %v; events %d", counts, tl.events)
		}
		if wantOutcome == completed && (tl.measured != 1 || tl.ttfe.Quantile(1) != st.ttfe || tl.gap.Quantile(1) < time.Millisecond) {
			t.Fatalf("%d streams measured, first event %v (want 1 and %v), largest gap %v", tl.measured, tl.ttfe.Quantile(1), st.ttfe, tl.gap.Quantile(1))
		}
		if wantOutcome != completed && tl.measured != 0 {
			t.Fatalf("%d streams measured that did not complete", tl.measured)
		}
		if wantOutcome == failed && (!strings.Contains(tl.firstErr, wantErr) || tl.kinds[wantKind] != 2 || len(tl.kinds) != 1) {
			t.Fatalf("first error %q, kinds %v; want %q, 2 of %q", tl.firstErr, tl.kinds, wantErr, wantKind)
		}
		if wantOutcome != failed && tl.kinds != nil {
			t.Fatalf("error kinds %v of streams that did not fail", tl.kinds)
		}
	}
	f(sseHead+chunked(ev, ev, ev, done), false, completed, "", "", 2)
	f(sseHead+chunked(ev, ev, ev, ev, done), false, completed, "", "", 3)  // more than asked
	f(sseHead+chunked(ev, ev, done), false, truncated, "", "", 1)          // an event short
	f(sseHead+chunked(ev, ev, ev), false, truncated, "", "", 2)            // no [DONE]
	f("HTTP/1.0 200 OK\r\n\r\n"+ev+ev+ev+done, true, completed, "", "", 2) // ends with the connection
	f(sseHead+"a\r\n"+ev, true, failed, "closed", "connection closed after 1 events", 0)
	f("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}", false, failed, "status 503", "status 503", 0)
	f("nonsense\r\n", false, failed, "malformed", "malformed response", 0)

	// Events are counted in the window only: a stream whose reads all
	// come after it has none, and is still counted whole.
	var st streamStat
	st.want = 1
	st.begin(sent)
	if !st.onRead([]byte(sseHead+chunked(ev, done)), to, from, to) || st.outcome != completed || st.events != 0 {
		t.Fatalf("a stream read at the window's end: outcome %d, %d events of the window", st.outcome, st.events)
	}
}

// TestRxTime: the kernel stamps what a loopback socket receives, and
// rxTime reads the stamp.
func TestRxTime(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	raw, err := client.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	raw.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1) })
	if serr != nil {
		t.Fatal(serr)
	}
	// Linux turns stamping on for the whole stack a moment after the
	// first socket asks for it (a deferred static key): the first reads
	// may have none, so the server writes until one has.
	buf, oob := make([]byte, 64), make([]byte, syscall.CmsgSpace(16))
	var ts time.Time
	var ok bool
	var oobn int
	for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); {
		before := time.Now()
		server.Write([]byte("data: x\n\n"))
		var n int
		var rerr error
		raw.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = syscall.Recvmsg(int(fd), buf, oob, 0)
			return !errors.Is(rerr, syscall.EAGAIN)
		})
		if rerr != nil || n != 9 {
			t.Fatalf("recvmsg: %d bytes, %v", n, rerr)
		}
		if ts, ok = rxTime(oob[:oobn]); ok {
			// Between the write and now (by the wall clock, which
			// only a step of NTP could move here).
			if ts.Before(before.Add(-time.Second)) || ts.After(time.Now().Add(time.Second)) {
				t.Fatalf("receive time %v; written at %v", ts, before)
			}
		}
	}
	if !ok {
		t.Fatal("no receive time in 5 s")
	}
	if _, ok := rxTime(nil); ok {
		t.Error("a time from no control message")
	}
	if _, ok := rxTime(oob[:oobn-1]); ok {
		t.Error("a time from a cut control message")
	}
}

// TestIdle: connections that each made a request stay open, idle, and
// Open tells those the server closed.
func TestIdle(t *testing.T) {
	addr := startMock(t, 3, 0)
	req := []byte("GET /v1/models HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
	ic, err := OpenIdle(context.Background(), addr, req, 200, 30, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if ic.Len() != 30 || ic.Open() != 30 {
		t.Fatalf("%d connections, %d open; want 30", ic.Len(), ic.Open())
	}
	// A server that closes after its answer: refused, none left open.
	closing := rawServer(t, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	if _, err := OpenIdle(context.Background(), closing, req, 200, 5, 2); err == nil || !strings.Contains(err.Error(), "closes the connection") {
		t.Fatalf("a server closing its connections: error %v", err)
	}
	if _, err := OpenIdle(context.Background(), addr, req, 404, 5, 2); err == nil || !strings.Contains(err.Error(), "status 200, want 404") {
		t.Fatalf("a wrong status: error %v", err)
	}
	// A server that closes idle connections without a word: Open sees
	// them go (as soon as their FIN has arrived).
	dropping := rawServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	ic, err = OpenIdle(context.Background(), dropping, req, 200, 5, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	open := ic.Open()
	for deadline := time.Now().Add(5 * time.Second); open > 0 && time.Now().Before(deadline); open = ic.Open() {
		time.Sleep(10 * time.Millisecond)
	}
	if open != 0 {
		t.Fatalf("%d connections open after the server closed them all", open)
	}
}

// TestSendTimesTheWrite: a stream's times start when its request is
// written, not at the time the loop passes, which for a request sent
// after the previous stream's end is that end's arrival, read up to a
// tick before.
func TestSendTimesTheWrite(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	l := &streamLoop{s: &Streams{Request: []byte("GET / HTTP/1.1\r\n\r\n")}, conns: []loopConn{{fd: fds[0]}}}
	before := time.Now()
	l.send(0, before.Add(-time.Second)) // the previous stream's end, a second ago
	if sent := l.conns[0].st.sent; sent.Before(before) {
		t.Errorf("the request written after %v is timed from %v", before, sent)
	}
	if l.conns[0].state != csStreaming {
		t.Errorf("state %v after the request, want streaming", l.conns[0].state)
	}
}
