package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// maxHeadLine is the longest response head line, or chunk-size line, an
// eventReader accepts.
const maxHeadLine = 8 << 10

// errBody is the error, wrapped, for a response an eventReader cannot
// follow.
var errBody = errors.New("malformed response")

// readState is where an eventReader is in a response.
type readState uint8

const (
	stStatus     readState = iota // the status line
	stHeader                      // a header line, or the blank line after them
	stChunkSize                   // a chunk-size line
	stChunkData                   // inside a chunk
	stChunkEnd                    // the CRLF after a chunk's data
	stTrailer                     // a trailer line, or the blank line ending the body
	stLength                      // inside a Content-Length body
	stUntilClose                  // a body that ends with the connection
	stEnd                         // the response is complete
)

// eventReader follows one HTTP/1.x response carrying server-sent events,
// fed its bytes as they arrive, in pieces of any size (the streams-at-scale
// generator feeds it each read). It counts the events whose blank line has
// arrived, "data: [DONE]" apart, and tells when the response is complete.
// Its zero value is ready for a response; reset makes it ready for the
// next one on the same connection. It keeps no reference to what it is fed.
type eventReader struct {
	state   readState
	line    []byte // the head, chunk-size or trailer line read so far
	status  int
	chunked bool
	length  int64 // Content-Length, -1 for none
	close   bool  // the connection ends after this response
	left    int64 // bytes left in the chunk or the Content-Length body

	// The event being read.
	evHead    [len(stampPrefix) + stampDigits]byte // its first bytes
	evLen     int                                  // its bytes so far, line ends included
	firstLine int                                  // length of its first line without its line end, -1 until it ends
	lineLen   int                                  // bytes of the current line so far
	last      byte                                 // the current line's last byte so far

	events int  // events read, "data: [DONE]" not counted
	done   bool // "data: [DONE]" read

	// stamps are the upstream's times (Unix ns) of the events read since
	// the caller last emptied it: of those that open with stampPrefix.
	stamps []int64
}

// doneEvent is the last event of an OpenAI stream.
const doneEvent = "data: [DONE]"

// stampPrefix opens an event the upstream stamped with the time it wrote
// it (bench/internal/eventsrv), before stampDigits digits of Unix
// nanoseconds.
const (
	stampPrefix = `data: {"sent_at_ns":`
	stampDigits = 19
)

// reset makes r ready for the next response, keeping its buffers.
func (r *eventReader) reset() {
	line, stamps := r.line[:0], r.stamps[:0]
	*r = eventReader{line: line, stamps: stamps}
}

// started reports whether any byte of the response has been fed.
func (r *eventReader) started() bool { return r.state != stStatus || len(r.line) > 0 }

// feed reads p, the next bytes of the response, and returns how many
// events ended in them and whether the response is now complete. Bytes
// after the end of the response are an error: the generator never
// pipelines.
func (r *eventReader) feed(p []byte) (events int, end bool, err error) {
	for len(p) > 0 {
		switch r.state {
		case stStatus, stHeader, stChunkSize, stChunkEnd, stTrailer:
			var line []byte
			var ok bool
			if line, p, ok, err = r.readLine(p); err != nil || !ok {
				return events, false, err
			}
			if err = r.onLine(line); err != nil {
				return events, false, err
			}
		case stChunkData, stLength:
			n := int(min(r.left, int64(len(p))))
			events += r.body(p[:n])
			p = p[n:]
			r.left -= int64(n)
			if r.left == 0 {
				if r.state == stChunkData {
					r.state = stChunkEnd
				} else {
					r.state = stEnd
				}
			}
		case stUntilClose:
			events += r.body(p)
			p = nil
		case stEnd:
			return events, true, fmt.Errorf("%w: %d bytes after the end of the response", errBody, len(p))
		}
	}
	return events, r.state == stEnd, nil
}

// eof tells r that the connection has ended, and reports whether that
// completes the response (a body that ends with the connection).
func (r *eventReader) eof() bool {
	if r.state == stUntilClose {
		r.state = stEnd
	}
	return r.state == stEnd
}

// readLine appends p's bytes up to the first "\n" to r.line and returns
// the whole line without its line end, and the rest of p; ok is false if p
// ends before the line does.
func (r *eventReader) readLine(p []byte) (line, rest []byte, ok bool, err error) {
	i := bytes.IndexByte(p, '\n')
	n := len(p)
	if i >= 0 {
		n = i
	}
	if len(r.line)+n > maxHeadLine {
		return nil, nil, false, fmt.Errorf("%w: a head line longer than %d bytes", errBody, maxHeadLine)
	}
	if i < 0 {
		r.line = append(r.line, p...)
		return nil, nil, false, nil
	}
	line = p[:i]
	if len(r.line) > 0 {
		r.line = append(r.line, line...)
		line = r.line
	}
	r.line = r.line[:0] // line stays valid until the next append
	return bytes.TrimSuffix(line, []byte("\r")), p[i+1:], true, nil
}

// onLine handles one line of the head, of the chunked framing or of the
// trailer.
func (r *eventReader) onLine(line []byte) error {
	switch r.state {
	case stStatus:
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
			return fmt.Errorf("%w: status line %q", errBody, line)
		}
		status, err := strconv.Atoi(string(line[9:12]))
		if err != nil {
			return fmt.Errorf("%w: status line %q", errBody, line)
		}
		r.status, r.close, r.length = status, line[7] == '0', -1
		r.state = stHeader
	case stHeader:
		if len(line) == 0 {
			r.startBody()
			return nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return fmt.Errorf("%w: header line %q", errBody, line)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("%w: Content-Length %q", errBody, v)
			}
			r.length = n
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			r.chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			if bytes.EqualFold(v, []byte("close")) {
				r.close = true
			} else if bytes.EqualFold(v, []byte("keep-alive")) {
				r.close = false
			}
		}
	case stChunkSize:
		hex, _, _ := bytes.Cut(line, []byte(";"))
		size, err := strconv.ParseInt(string(bytes.TrimSpace(hex)), 16, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("%w: chunk size %q", errBody, line)
		}
		if size == 0 {
			r.state = stTrailer
		} else {
			r.state, r.left = stChunkData, size
		}
	case stChunkEnd:
		if len(line) != 0 {
			return fmt.Errorf("%w: %q after a chunk's data", errBody, line)
		}
		r.state = stChunkSize
	case stTrailer:
		if len(line) == 0 {
			r.state = stEnd
		}
	}
	return nil
}

// startBody moves r from the head to the body.
func (r *eventReader) startBody() {
	r.firstLine = -1
	switch {
	case r.status == 204 || r.status == 304 || r.status/100 == 1:
		r.state = stEnd
	case r.chunked:
		r.state = stChunkSize
	case r.length == 0:
		r.state = stEnd
	case r.length > 0:
		r.state, r.left = stLength, r.length
	default:
		r.state, r.close = stUntilClose, true
	}
}

// body reads the body's bytes b as server-sent events (lines ended by
// "\n" or "\r\n", an event ended by a blank line) and returns how many
// events ended in them.
func (r *eventReader) body(b []byte) (events int) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		seg := b
		if i >= 0 {
			seg = b[:i]
		}
		if len(seg) > 0 {
			if r.evLen < len(r.evHead) {
				copy(r.evHead[r.evLen:], seg)
			}
			r.evLen += len(seg)
			r.lineLen += len(seg)
			r.last = seg[len(seg)-1]
		}
		if i < 0 {
			break
		}
		b = b[i+1:]
		n := r.lineLen
		if n > 0 && r.last == '\r' {
			n--
		}
		r.lineLen = 0
		if n > 0 {
			if r.firstLine < 0 {
				r.firstLine = n
			}
			r.evLen++ // the "\n"
			continue
		}
		// A blank line ends the event, if a line came before it.
		if r.firstLine >= 0 {
			if r.firstLine == len(doneEvent) && string(r.evHead[:len(doneEvent)]) == doneEvent {
				r.done = true
			} else if r.evHead[0] != ':' {
				events++ // not a comment
				if v, ok := r.stamp(); ok {
					r.stamps = append(r.stamps, v)
				}
			}
		}
		r.evLen, r.firstLine = 0, -1
	}
	r.events += events
	return events
}

// stamp returns the upstream's time in the event that has just ended, if
// its first line opens with stampPrefix and stampDigits digits.
func (r *eventReader) stamp() (int64, bool) {
	if r.firstLine < len(r.evHead) || string(r.evHead[:len(stampPrefix)]) != stampPrefix {
		return 0, false
	}
	var v int64
	for _, c := range r.evHead[len(stampPrefix):] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}
