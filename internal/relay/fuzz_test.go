package relay

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http/httputil"
	"slices"
	"testing"
)

// FuzzChunkDecoder: chunkDecoder never panics; its data are the input's
// own bytes (decodeChunks); it reads an input the same whole, byte by
// byte and in the pieces split chooses; the framing of a body it accepts
// has CR and LF only as CRLF, and ends with one; on a body that
// httputil's chunked reader accepts, its data are that reader's; such a
// body followed by a bare CRLF (no trailer) it accepts, unless a size has
// 16 hex digits; and the input, sent in chunks whose sizes split chooses,
// it reads back.
func FuzzChunkDecoder(f *testing.F) {
	for _, s := range []string{
		"0\r\n\r\n",
		"5\r\nhello\r\n0\r\n\r\n",
		"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n",
		"a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n",
		"5;name=value\r\nhello\r\n0\r\n\r\n",
		"5 ;a=\"Z q\"\r\nhello\r\n0\r\n\r\n",
		"5\r\nhello\r\n0\r\nX-A: b\r\n\r\n",
		"5\r\nhelloX\r\n0\r\n\r\n",
		"5g\r\nhello\r\n0\r\n\r\n",
		"\r\nhello\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s), uint16(0x1234))
	}
	f.Fuzz(func(t *testing.T, body []byte, split uint16) {
		whole := decodeChunks(t, [][]byte{body})
		same := func(how string, r chunkResult) {
			if !bytes.Equal(r.data, whole.data) || !bytes.Equal(r.after, whole.after) ||
				r.done != whole.done || (r.err == nil) != (whole.err == nil) || !slices.Equal(r.spans, whole.spans) {
				t.Fatalf("%q fed %s: data %q, after %q, done %v, err %v; fed whole: %q, %q, %v, %v",
					body, how, r.data, r.after, r.done, r.err, whole.data, whole.after, whole.done, whole.err)
			}
		}
		byByte := decodeChunks(t, bytewise(body))
		same("byte by byte", byByte)
		same("in pieces", decodeChunks(t, pieces(body, split)))

		if whole.done {
			if i := bareCRLF(body[:len(body)-len(whole.after)], whole.spans); i >= 0 {
				t.Fatalf("%q: done, with a CR or LF not in a CRLF at %d in the framing", body, i)
			}
		}

		src := bytes.NewReader(body)
		br := bufio.NewReader(src)
		want, err := io.ReadAll(httputil.NewChunkedReader(br))
		if err == nil {
			end := len(body) - br.Buffered() - src.Len() // after the last chunk's size line
			if !bytes.HasPrefix(want, whole.data) || whole.done && !bytes.Equal(whole.data, want) {
				t.Fatalf("%q: data %q, done %v; httputil's %q", body, whole.data, whole.done, want)
			}
			if after, ok := bytes.CutPrefix(body[end:], []byte("\r\n")); ok {
				if !whole.done && (byByte.err == nil || !sixteenDigits(body, byByte.at)) {
					t.Fatalf("%q: not done (err %v at %d); httputil reads %q", body, whole.err, byByte.at, want)
				}
				if whole.done && !bytes.Equal(whole.after, after) {
					t.Fatalf("%q: after %q, want %q", body, whole.after, after)
				}
			}
		}

		var enc []byte
		for k, p := range pieces(body, split) {
			if k%3 == 1 {
				enc = fmt.Appendf(enc, "%X;k=%d\r\n", len(p), k)
			} else {
				enc = fmt.Appendf(enc, "%x\r\n", len(p))
			}
			enc = append(append(enc, p...), "\r\n"...)
		}
		enc = append(enc, "0\r\n"...)
		if split&1 != 0 {
			enc = append(enc, "X-A: b\r\n"...)
		}
		enc = append(enc, "\r\nnext"...)
		r := decodeChunks(t, pieces(enc, split>>3))
		if !r.done || !bytes.Equal(r.data, body) || string(r.after) != "next" {
			t.Fatalf("%q: data %q, after %q, done %v, err %v; want %q, %q", enc, r.data, r.after, r.done, r.err, body, "next")
		}
	})
}

// pieces splits b into pieces of 1 to 226 bytes, their sizes chosen in
// turn by split's four nibbles.
func pieces(b []byte, split uint16) [][]byte {
	var ps [][]byte
	for k := 0; len(b) > 0; k++ {
		nib := int(split>>(4*(k%4))) & 15
		n := min(nib*nib+1, len(b))
		ps, b = append(ps, b[:n]), b[n:]
	}
	return ps
}

// bareCRLF returns the index of the first CR or LF in body's framing,
// all but the data at spans, that is not in a CRLF of the framing, or of
// body's last byte if it is not such a CRLF's LF; else -1.
func bareCRLF(body []byte, spans [][2]int) int {
	data := make([]bool, len(body))
	for _, s := range spans {
		for i := s[0]; i < s[1]; i++ {
			data[i] = true
		}
	}
	framing := func(i int, c byte) bool { return 0 <= i && i < len(body) && !data[i] && body[i] == c }
	for i, c := range body {
		if !data[i] && (c == '\r' && !framing(i+1, '\n') || c == '\n' && !framing(i-1, '\r')) {
			return i
		}
	}
	if !framing(len(body)-1, '\n') {
		return len(body) - 1
	}
	return -1
}

// sixteenDigits reports whether b[i] is the 16th hex digit of a line,
// where chunkDecoder refuses a size that httputil's reader accepts.
func sixteenDigits(b []byte, i int) bool {
	if i < 15 || i >= len(b) || i > 15 && b[i-16] != '\n' {
		return false
	}
	for _, c := range b[i-15 : i+1] {
		if _, ok := unhex(c); !ok {
			return false
		}
	}
	return true
}
