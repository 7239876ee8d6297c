package relay

import "github.com/authgate/authgate/internal/safelog"

// chunkDecoder decodes an HTTP/1.1 chunked body (RFC 9112 section 7.1)
// as it arrives, in pieces of any size: it keeps only where it is in the
// framing, never the bytes. Chunk extensions and trailer fields are
// skipped (bounded by maxFramingLine and maxTrailer). Lines end in CRLF;
// a bare LF is refused, as are a size without digits or over 15 hex
// digits.
type chunkDecoder struct {
	state  chunkState
	size   uint64 // the current chunk's data left, or its size so far
	digits int    // hex digits of the size read so far
	line   int    // bytes of the current extension or trailer line
	tail   int    // bytes of trailer fields so far
}

type chunkState uint8

const (
	chunkSize    chunkState = iota // in the size's hex digits
	chunkExt                       // in the size line's extensions
	chunkSizeLF                    // the size line's CR read
	chunkData                      // in a chunk's data
	chunkDataCR                    // after a chunk's data
	chunkDataLF                    // after a chunk's data and CR
	chunkTrailer                   // at the start of a trailer line
	chunkField                     // in a trailer field
	chunkFieldLF                   // a trailer field's CR read
	chunkEndLF                     // the last line's CR read
	chunkDone                      // the body has ended
)

// Limits on the framing: a size line's extensions, and the trailer.
const (
	maxFramingLine = 4 << 10
	maxTrailer     = 8 << 10
)

var errChunked = safelog.Fixed("malformed chunked body")

// done reports whether the body's last chunk and trailer have been read.
func (d *chunkDecoder) done() bool { return d.state == chunkDone }

// next reads framing from the start of b up to the next data: it returns
// the data (a slice of b, possibly empty) and what follows it in b. Called
// until rest is empty or the body is done, it reads all of b; after the
// body's end, rest is what followed it. err is errChunked for framing that
// is not a chunked body's.
func (d *chunkDecoder) next(b []byte) (data, rest []byte, err error) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch d.state {
		case chunkSize:
			if v, ok := unhex(c); ok {
				if d.digits == 15 {
					return nil, nil, errChunked
				}
				d.size, d.digits = d.size<<4|uint64(v), d.digits+1
				continue
			}
			if d.digits == 0 {
				return nil, nil, errChunked
			}
			switch c {
			case '\r':
				d.state = chunkSizeLF
			case ';', ' ', '\t':
				d.state, d.line = chunkExt, 0
			default:
				return nil, nil, errChunked
			}
		case chunkExt:
			switch {
			case c == '\r':
				d.state = chunkSizeLF
			case c == '\n' || d.line == maxFramingLine:
				return nil, nil, errChunked
			default:
				d.line++
			}
		case chunkSizeLF:
			if c != '\n' {
				return nil, nil, errChunked
			}
			if d.size == 0 {
				d.state = chunkTrailer
			} else {
				d.state = chunkData
			}
		case chunkData:
			n := uint64(len(b) - i)
			if n > d.size {
				n = d.size
			}
			d.size -= n
			if d.size == 0 {
				d.state = chunkDataCR
			}
			return b[i : i+int(n)], b[i+int(n):], nil
		case chunkDataCR:
			if c != '\r' {
				return nil, nil, errChunked
			}
			d.state = chunkDataLF
		case chunkDataLF:
			if c != '\n' {
				return nil, nil, errChunked
			}
			d.state, d.size, d.digits = chunkSize, 0, 0
		case chunkTrailer:
			if c == '\r' {
				d.state = chunkEndLF
				continue
			}
			d.state, d.line = chunkField, 0
			i-- // the field's first byte
		case chunkField:
			d.tail++
			switch {
			case d.tail > maxTrailer || c == '\n':
				return nil, nil, errChunked
			case c == '\r':
				d.state = chunkFieldLF
			}
		case chunkFieldLF:
			if c != '\n' {
				return nil, nil, errChunked
			}
			d.state = chunkTrailer
		case chunkEndLF:
			if c != '\n' {
				return nil, nil, errChunked
			}
			d.state = chunkDone
		case chunkDone:
			return nil, b[i:], nil
		}
	}
	return nil, nil, nil
}

// unhex returns the value of the hex digit c.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
