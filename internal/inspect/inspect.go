// Package inspect reads request bodies whole, for the gateway to look
// inside them before it picks an upstream (the model a request names),
// with the memory they hold bounded twice: each body by MaxBody, and every
// body under inspection at once by a Budget's total. A body is read into a
// pooled buffer as far as it goes, never past its bound; a request refused
// for either bound has its body left unread, for the caller to close the
// connection gently (docs/http.md#model-routing).
package inspect

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// Errors of Read. Any other error is the client's body failing (gone, too
// slow, malformed chunks), as the request stream reports it.
var (
	// ErrTooLarge: the body is over the per-body bound.
	ErrTooLarge = errors.New("inspect: request body over the inspection bound")
	// ErrBusy: the bodies under inspection already hold the whole budget.
	ErrBusy = errors.New("inspect: inspection memory budget exhausted")
	// ErrShort: the body ended before its Content-Length.
	ErrShort = io.ErrUnexpectedEOF
)

// Budget bounds the memory held by bodies under inspection. Its methods
// are safe for concurrent use.
type Budget struct {
	maxBody int   // the largest body read, in bytes
	total   int64 // the most all bodies under inspection hold at once
	used    atomic.Int64
	pool    sync.Pool // *Body
}

// NewBudget returns a Budget for bodies of at most maxBody bytes, holding
// at most total bytes at once.
func NewBudget(maxBody int, total int64) *Budget {
	return &Budget{maxBody: maxBody, total: total}
}

// MaxBody is the largest body the Budget reads.
func (b *Budget) MaxBody() int { return b.maxBody }

// InUse is the number of bytes reserved by bodies under inspection.
func (b *Budget) InUse() int64 { return b.used.Load() }

// Body is a request body read whole: Bytes until Release.
type Body struct {
	buf      []byte
	spare    []byte  // Rewrite's buffer for the next version of buf
	end      [1]byte // readEnd's: a local would escape to the heap
	reserved int64
}

// Bytes returns the body; valid until the Body is released.
func (bd *Body) Bytes() []byte { return bd.buf }

// growStep is how much more a body of unknown length (chunked) reserves
// each time it outgrows its reservation.
const growStep = 64 << 10

// Read reads req's body whole into a pooled buffer, reserving its size in
// the budget first (a body of unknown length, as it grows). The body comes
// from req's stream if it has one (the gateway streams request bodies),
// else from memory. The caller must Release the Body when the request no
// longer uses its bytes. On error nothing is held.
func (b *Budget) Read(req *fasthttp.Request) (*Body, error) {
	size := req.Header.ContentLength() // -1: chunked; -2: identity, to the close (not for requests)
	if size > b.maxBody {
		return nil, ErrTooLarge
	}
	bd, _ := b.pool.Get().(*Body)
	if bd == nil {
		bd = &Body{}
	}
	bd.buf = bd.buf[:0]
	want := int64(growStep)
	if size >= 0 {
		want = int64(size)
	}
	if !b.reserve(bd, want) {
		b.put(bd)
		return nil, ErrBusy
	}
	s := req.BodyStream()
	if s == nil || !req.IsBodyStream() {
		body := req.Body()
		if len(body) > b.maxBody {
			b.Release(bd)
			return nil, ErrTooLarge
		}
		if int64(len(body)) > bd.reserved && !b.reserve(bd, int64(len(body))) {
			b.Release(bd)
			return nil, ErrBusy
		}
		bd.buf = append(bd.buf, body...)
		return bd, nil
	}
	if err := b.readStream(bd, s, size); err != nil {
		b.Release(bd)
		return nil, err
	}
	return bd, nil
}

// readStream reads s to its end into bd, size bytes if size >= 0.
func (b *Budget) readStream(bd *Body, s io.Reader, size int) error {
	if size >= 0 && cap(bd.buf) < size {
		bd.buf = make([]byte, 0, size)
	}
	for {
		if size >= 0 && len(bd.buf) == size {
			return readEnd(s, bd.end[:])
		}
		if len(bd.buf) == cap(bd.buf) {
			if len(bd.buf) >= b.maxBody+1 {
				return ErrTooLarge
			}
			bd.buf = append(bd.buf, 0)[:len(bd.buf)] // let append pick the growth
		}
		if int64(cap(bd.buf)) > bd.reserved && !b.reserve(bd, int64(min(cap(bd.buf), b.maxBody+1))) {
			return ErrBusy
		}
		room := bd.buf[len(bd.buf):min(cap(bd.buf), b.maxBody+1)]
		n, err := s.Read(room)
		bd.buf = bd.buf[:len(bd.buf)+n]
		if len(bd.buf) > b.maxBody {
			return ErrTooLarge
		}
		switch {
		case err == io.EOF:
			if size >= 0 && len(bd.buf) < size {
				return ErrShort
			}
			return nil
		case err != nil:
			return err
		}
	}
}

// readEnd reads s, whose body of known length has been read whole, to its
// end, into one byte rather than a buffer grown for it: nil at the end,
// ErrTooLarge if the stream gives more than its length, or the stream's
// error.
func readEnd(s io.Reader, one []byte) error {
	for {
		n, err := s.Read(one)
		switch {
		case n > 0:
			return ErrTooLarge
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		}
	}
}

// reserve raises bd's reservation to n bytes, if the budget has room.
func (b *Budget) reserve(bd *Body, n int64) bool {
	more := n - bd.reserved
	if more <= 0 {
		return true
	}
	if b.used.Add(more) > b.total {
		b.used.Add(-more)
		return false
	}
	bd.reserved = n
	return true
}

// Release returns bd's reservation and buffer. bd must not be used after.
func (b *Budget) Release(bd *Body) {
	b.used.Add(-bd.reserved)
	bd.reserved = 0
	b.put(bd)
}

// Rewrite replaces bd's bytes by edit's rewrite of them, appended to a
// second pooled buffer, whose size it reserves in the budget too: the old
// bytes stay held until Release, as the request that pointed to them may
// still do. It returns ErrBusy, bd unchanged, if the budget has no room.
func (b *Budget) Rewrite(bd *Body, edit func(dst, body []byte) []byte) error {
	out := edit(bd.spare[:0], bd.buf)
	if !b.reserve(bd, int64(cap(bd.buf))+int64(cap(out))) {
		bd.spare = out[:0]
		return ErrBusy
	}
	bd.buf, bd.spare = out, bd.buf
	return nil
}

// maxPooled is the largest buffer kept for reuse: a rare large body does
// not stay in memory after it.
const maxPooled = 256 << 10

func (b *Budget) put(bd *Body) {
	if cap(bd.buf) > maxPooled {
		bd.buf = nil
	}
	if cap(bd.spare) > maxPooled {
		bd.spare = nil
	}
	bd.buf, bd.spare = bd.buf[:0], bd.spare[:0]
	b.pool.Put(bd)
}
