package relay

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestChunkDecoder(t *testing.T) {
	f := func(body, want, after string) {
		t.Helper()
		in := []byte(body + after)
		check := func(how string, pieces [][]byte) {
			t.Helper()
			r := decodeChunks(t, pieces)
			if r.err != nil || !r.done || string(r.data) != want || string(r.after) != after {
				t.Fatalf("%q fed %s: data %q, after %q, done %v, err %v; want data %q, after %q",
					in, how, r.data, r.after, r.done, r.err, want, after)
			}
		}
		check("whole", [][]byte{in})
		check("byte by byte", bytewise(in))
		for i := 0; i <= len(in); i++ {
			check(fmt.Sprintf("split at %d", i), [][]byte{in[:i], in[i:]})
		}
		for i := 0; i < len(body); i += 1 + len(body)/256 {
			r := decodeChunks(t, [][]byte{in[:i]})
			if r.err != nil || r.done || !strings.HasPrefix(want, string(r.data)) {
				t.Fatalf("%q: data %q, done %v, err %v; want part of %q, not done", in[:i], r.data, r.done, r.err, want)
			}
		}
	}
	f("0\r\n\r\n", "", "")
	f("5\r\nhello\r\n0\r\n\r\n", "hello", "")
	f("5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", "hello world", "")
	f("a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij", "")
	f("1f\r\n"+strings.Repeat("x", 31)+"\r\n1F\r\n"+strings.Repeat("y", 31)+"\r\n0\r\n\r\n",
		strings.Repeat("x", 31)+strings.Repeat("y", 31), "")
	f("1000\r\n"+strings.Repeat("z", 4096)+"\r\n0\r\n\r\n", strings.Repeat("z", 4096), "")
	f("000005\r\nhello\r\n00\r\n\r\n", "hello", "")
	f("00000000000000a\r\n0123456789\r\n000000000000000\r\n\r\n", "0123456789", "")
	// Data that looks like framing is data.
	f("9\r\n0\r\n\r\n\r\n\n\r\r\n0\r\n\r\n", "0\r\n\r\n\r\n\n\r", "")

	// Extensions.
	f("5;name=value\r\nhello\r\n0\r\n\r\n", "hello", "")
	f("5;a;b=\"q;uo\\\"ted\"\r\nhello\r\n0;last\r\n\r\n", "hello", "")
	f("5 ;a\r\nhello\r\n0\t;b\r\n\r\n", "hello", "")
	f("5 \r\nhello\r\n0\t\r\n\r\n", "hello", "")
	f("5;"+strings.Repeat("x", maxFramingLine-1)+"\r\nhello\r\n0\r\n\r\n", "hello", "")

	// Trailers.
	f("0\r\nX-A: b\r\n\r\n", "", "")
	f("5\r\nhello\r\n0\r\nX-A: b\r\nX-B:\r\n\r\n", "hello", "")
	f("0\r\nX: "+strings.Repeat("v", maxTrailer-5)+"\r\n\r\n", "", "") // maxTrailer bytes with its CRLF

	// What follows the body is not the body's.
	f("0\r\n\r\n", "", "HTTP/1.1 200 OK\r\n\r\n")
	f("5\r\nhello\r\n0\r\n\r\n", "hello", "5\r\nextra\r\n0\r\n\r\n")
	f("5\r\nhello\r\n0\r\nX-A: b\r\n\r\n", "hello", "\r\n")
	f("0\r\n\r\n", "", "\n")

	bad := func(body string) {
		t.Helper()
		in := []byte(body)
		check := func(how string, pieces [][]byte) {
			t.Helper()
			r := decodeChunks(t, pieces)
			if !errors.Is(r.err, errChunked) || r.done {
				t.Fatalf("%q fed %s: data %q, done %v, err %v; want %v", in, how, r.data, r.done, r.err, errChunked)
			}
		}
		check("whole", [][]byte{in})
		check("byte by byte", bytewise(in))
		for i := 0; i <= len(in); i += 1 + len(in)/256 {
			check(fmt.Sprintf("split at %d", i), [][]byte{in[:i], in[i:]})
		}
	}
	// Bare LF in the framing.
	bad("5\nhello\r\n0\r\n\r\n")
	bad("5\r\nhello\n0\r\n\r\n")
	bad("5\r\nhello\r\n0\n\r\n")
	bad("5\r\nhello\r\n0\r\n\n")
	bad("5;a=b\nhello\r\n0\r\n\r\n")
	bad("5\r\nhello\r\n0\r\nX-A: b\n\r\n")
	bad("5\r\nhello\r\n0\r\nX-A: b\r\n\n")
	bad("\n5\r\nhello\r\n0\r\n\r\n")
	// CR without LF.
	bad("5\rhello\r\n0\r\n\r\n")
	bad("5;a\rb\r\nhello\r\n0\r\n\r\n")
	bad("5\r\nhello\r0\r\n\r\n")
	bad("5\r\nhello\r\n0\r\nX-A: a\rb\r\n\r\n")
	bad("5\r\nhello\r\n0\r\n\rX")
	bad("5\r\nhello\r\n0\r\n\r\r\n")
	// No CRLF after the data: more data than the size says, or less.
	bad("5\r\nhelloX\r\n0\r\n\r\n")
	bad("5\r\nhello0\r\n\r\n")
	bad("3\r\nhello\r\n0\r\n\r\n")
	bad("6\r\nhello\r\n0\r\n\r\n")
	// Sizes that are not hex digits.
	bad("g\r\nhello\r\n0\r\n\r\n")
	bad("5g\r\nhello\r\n0\r\n\r\n")
	bad("0x5\r\nhello\r\n0\r\n\r\n")
	bad("-5\r\nhello\r\n0\r\n\r\n")
	bad("+5\r\nhello\r\n0\r\n\r\n")
	bad(" 5\r\nhello\r\n0\r\n\r\n")
	bad("5\r\nhello\r\nz\r\n\r\n")
	// Sizes without digits.
	bad("\r\nhello\r\n0\r\n\r\n")
	bad(";a\r\nhello\r\n0\r\n\r\n")
	bad(" \r\nhello\r\n0\r\n\r\n")
	bad("5\r\nhello\r\n\r\n\r\n")
	// Sizes of 16 hex digits, even with leading zeros.
	bad("0000000000000005\r\nhello\r\n0\r\n\r\n")
	bad("ffffffffffffffff\r\nhello\r\n0\r\n\r\n")
	bad("5\r\nhello\r\n0000000000000000\r\n\r\n")
	// Framing over its limits.
	bad("5;" + strings.Repeat("x", maxFramingLine+1) + "\r\nhello\r\n0\r\n\r\n")
	bad("5\r\nhello\r\n0;" + strings.Repeat("x", maxFramingLine+1) + "\r\n\r\n")
	bad("0\r\nX: " + strings.Repeat("v", maxTrailer-2) + "\r\n\r\n") // maxTrailer+1 bytes without its CRLF
	bad("0\r\n" + strings.Repeat("X: b\r\n", maxTrailer/4) + "\r\n")
}

// chunkResult is what a chunkDecoder made of a whole input.
type chunkResult struct {
	data  []byte // the data read, up to the body's end or the error
	after []byte // what followed the body's end
	done  bool
	err   error
	at    int      // the index of the piece in which err arose
	spans [][2]int // where the data were in the input, from and to
}

// decodeChunks feeds pieces in turn to a new chunkDecoder, calling next
// on each until it is used up or the body is done, as the relay does. It
// fails t if a call breaks next's contract: data and rest must be a
// piece's own bytes, adjacent and in place; a call must read all of its
// piece unless it returns data or the body ends; and the error must be
// errChunked. After the body's end, next returns what it is given.
func decodeChunks(t testing.TB, pieces [][]byte) chunkResult {
	t.Helper()
	var d chunkDecoder
	var r chunkResult
	pos := 0 // the input's bytes up to the current piece's end
	for k, b := range pieces {
		pos += len(b)
		if d.done() {
			r.after = append(r.after, b...)
			continue
		}
		for len(b) > 0 && !d.done() {
			data, rest, err := d.next(b)
			if err != nil {
				if !errors.Is(err, errChunked) {
					t.Fatalf("next(%q): error %v, want %v", b, err, errChunked)
				}
				r.data, r.err, r.at = append(r.data, data...), err, k
				return r
			}
			off := len(b) - len(rest) - len(data)
			switch {
			case off < 0:
				t.Fatalf("next(%q) = %q, %q: more than it was given", b, data, rest)
			case len(data) > 0 && &data[0] != &b[off]:
				t.Fatalf("next(%q) = %q, %q: data not in place", b, data, rest)
			case len(rest) > 0 && &rest[0] != &b[len(b)-len(rest)]:
				t.Fatalf("next(%q) = %q, %q: rest not in place", b, data, rest)
			case len(data) == 0 && len(rest) > 0 && !d.done():
				t.Fatalf("next(%q) = %q, %q: stopped early, not done", b, data, rest)
			}
			if len(data) > 0 {
				from := pos - len(rest) - len(data)
				if n := len(r.spans); n > 0 && r.spans[n-1][1] == from {
					r.spans[n-1][1] += len(data)
				} else {
					r.spans = append(r.spans, [2]int{from, from + len(data)})
				}
			}
			r.data = append(r.data, data...)
			b = rest
		}
		if d.done() {
			r.done = true
			r.after = append(r.after, b...)
		}
	}
	if r.done && len(r.after) > 0 {
		data, rest, err := d.next(r.after)
		if data != nil || err != nil || len(rest) != len(r.after) || &rest[0] != &r.after[0] {
			t.Fatalf("after the end, next(%q) = %q, %q, %v; want nothing, all of it", r.after, data, rest, err)
		}
	}
	return r
}

// bytewise returns b's bytes one by one.
func bytewise(b []byte) [][]byte {
	pieces := make([][]byte, len(b))
	for i := range b {
		pieces[i] = b[i : i+1]
	}
	return pieces
}
