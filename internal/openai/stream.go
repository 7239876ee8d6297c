package openai

import (
	"errors"
	"io"
)

// streamBufferSize is the size of a StreamReader's read buffer, which it
// makes only for a caller whose buffer is smaller.
const streamBufferSize = 4 << 10

// maxKeptOut is the largest buffer Reset keeps, of its own or its
// scanner's.
const maxKeptOut = 64 << 10

// StreamReader reads a text/event-stream body from an upstream (Src) and
// returns it to its reader event by event, reading what metering needs
// from each (SSEScanner): every complete event is returned as soon as its
// end arrives, never held for a later one, and the usage-only chunk is
// left out if DropUsageOnly. After the stream, Usage and HasUsage are the
// last usage an event reported and Content the number of content events.
// The zero value, with Src set, is ready to use; Reset readies it for
// another stream, keeping its buffers.
type StreamReader struct {
	Src           io.Reader
	DropUsageOnly bool

	Usage    Usage
	HasUsage bool
	Content  int

	scan    SSEScanner
	buf     []byte // what Src is read into for a caller with a smaller buffer
	out     []byte // the events to return, copied from buf or the scanner
	pending []byte // out's part not yet returned
	srcErr  error  // Src's end or error, once read
}

// Reset readies r to read src, dropping the usage-only chunk if drop.
func (r *StreamReader) Reset(src io.Reader, drop bool) {
	out := r.out[:0]
	if cap(out) > maxKeptOut {
		out = nil
	}
	if cap(r.scan.held) > maxKeptOut || cap(r.scan.data) > maxKeptOut {
		r.scan = SSEScanner{} // a rare long event's buffers do not stay
	}
	r.scan.Reset()
	*r = StreamReader{Src: src, DropUsageOnly: drop, scan: r.scan, buf: r.buf, out: out}
}

// Read returns the next events of the stream, or part of one that does
// not fit b. At the stream's end it returns the bytes of an event left
// unfinished, as they came, then Src's error (io.EOF at a clean end).
func (r *StreamReader) Read(b []byte) (int, error) {
	for {
		if len(r.pending) > 0 {
			n := copy(b, r.pending)
			r.pending = r.pending[n:]
			return n, nil
		}
		if r.srcErr != nil {
			if ev, ok := r.scan.Flush(); ok {
				r.out = append(r.out[:0], ev.Bytes...)
				r.pending = r.out
				continue
			}
			return 0, r.srcErr
		}
		// Src is read into b when b is large enough (fasthttp's 4 KiB copy
		// buffer, in the proxy): the events are copied out of it before
		// they are copied back, and the scanner keeps nothing of a chunk
		// past the loop below. A stream then holds no read buffer of its
		// own while it waits for its next event.
		buf := b
		if len(b) < streamBufferSize {
			if r.buf == nil {
				r.buf = make([]byte, streamBufferSize)
			}
			buf = r.buf
		}
		n, err := r.Src.Read(buf)
		r.scan.Feed(buf[:n])
		out := r.out[:0]
		for ev, ok := r.scan.Next(); ok; ev, ok = r.scan.Next() {
			if ev.Content {
				r.Content++
			}
			if ev.HasUsage {
				r.Usage, r.HasUsage = ev.Usage, true
			}
			if !(r.DropUsageOnly && ev.UsageOnly) {
				out = append(out, ev.Bytes...)
			}
		}
		r.out, r.pending = out, out
		if err != nil {
			r.srcErr = err
			if !errors.Is(err, io.EOF) {
				r.scan.Reset() // failed: an unfinished event is not passed on
			}
		}
	}
}
