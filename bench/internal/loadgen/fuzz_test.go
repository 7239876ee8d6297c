package loadgen

import (
	"slices"
	"testing"
)

// FuzzEventReader: whatever the bytes, an eventReader does not panic, and
// where the response is cut into reads changes nothing it reports, the
// upstream's stamps included.
func FuzzEventReader(f *testing.F) {
	f.Add([]byte(sseHead+chunked("data: 1\n\n", "data: [DONE]\n\n")), uint16(40))
	f.Add([]byte(sseHead+chunked("data: a\r\n\r\n: c\n\n", "data: [DONE]\r\n\r\n")), uint16(90))
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\ndata: x\n\n"), uint16(3))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ndata: x\n\n"), uint16(30))
	f.Add([]byte(sseHead+chunked(`data: {"sent_at_ns":1765000000000000001,"id":"x"}`+"\n\n", "data: [DONE]\n\n")), uint16(110))
	f.Fuzz(func(t *testing.T, resp []byte, cut uint16) {
		whole := readAll(string(resp), 0, true)
		var once eventReader
		once.feed(resp)
		var r eventReader
		var stamps []int64
		var split readResult
		at := min(int(cut), len(resp))
		for _, part := range [][]byte{resp[:at], resp[at:]} {
			if len(part) == 0 {
				continue
			}
			ev, end, err := r.feed(part)
			stamps = append(stamps, r.stamps...)
			r.stamps = r.stamps[:0]
			split.events += ev
			split.end = end
			if err != nil {
				split.err = true
				break
			}
		}
		if !split.err {
			split.end = r.eof()
		}
		split.status, split.done, split.close = r.status, r.done, r.close
		if split != whole {
			t.Fatalf("cut at %d: %+v; at once: %+v", at, split, whole)
		}
		if !split.err && !slices.Equal(stamps, once.stamps) {
			t.Fatalf("cut at %d: stamps %v; at once: %v", at, stamps, once.stamps)
		}
	})
}
