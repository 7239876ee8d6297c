package logsink

import (
	"sync"
	"sync/atomic"
)

// batch is a run of whole lines, each ending in its only '\n', in the
// order their Writes appended them.
type batch struct {
	buf   []byte
	lines int
}

// queue holds the lines between Write and the writer goroutine: the
// current batch, which Writes append to, and the full batches handed to
// the writer through a channel. A Write wakes the writer only when it
// hands a batch over, so the writer wakes once a batch, not once a line;
// on its ticks and control requests the writer takes the current batch
// itself, however full.
//
// A line is queued from its append until the writer takes its batch; add
// blocks while maxLines are queued, and refuses lines once close has
// begun. Every batch in the channel holds at least one queued line, so
// the channel, with room for maxLines batches, never blocks a send: add
// sends with mu held, which orders the batches as their lines were
// appended, and the writer takes the current batch under mu after the
// batches sent before it.
type queue struct {
	maxLines   int
	batchBytes int

	// batches carries full batches to the writer goroutine, its only
	// receiver. It is sent on with mu held, and closed by close once no
	// add is waiting for room.
	batches chan *batch

	mu      sync.Mutex
	room    sync.Cond // on mu; broadcast when the writer takes lines while adds wait
	cur     *batch    // the batch being filled: nil, or holding a line at least
	queued  int       // lines in cur and in the batches in the channel
	waiters int       // adds waiting for room
	closed  bool      // close has begun: add refuses lines

	// free holds emptied batches of batchBytes capacity for reuse. A pool
	// rather than a fixed list, so that a burst that queued many batches
	// reuses them while it lasts, and the garbage collector takes them
	// once it is over.
	free sync.Pool

	waited atomic.Uint64 // adds that found the queue full; written on that slow path only
}

// init makes q ready for use: at most maxLines queued lines, batches of
// batchBytes.
func (q *queue) init(maxLines, batchBytes int) {
	q.maxLines = maxLines
	q.batchBytes = batchBytes
	q.batches = make(chan *batch, maxLines)
	q.room.L = &q.mu
	q.free.New = func() any { return &batch{buf: make([]byte, 0, batchBytes)} }
}

// add copies line, which ends in its only '\n', to the current batch and
// reports true; it first blocks while maxLines lines are queued. It hands
// the batch to the writer goroutine before the line if the line does not
// fit in it, and after the line once it holds batchBytes or the queue is
// full (so that the writer makes room without waiting for its tick). Once
// close has begun it queues nothing and reports false; an add already
// waiting for room then still queues its line.
func (q *queue) add(line []byte) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	if q.queued >= q.maxLines {
		q.wait()
	}
	b := q.cur
	if b != nil && len(b.buf)+len(line) > q.batchBytes {
		q.seal()
		b = nil
	}
	if b == nil {
		b = q.free.Get().(*batch)
		q.cur = b
	}
	b.buf = append(b.buf, line...)
	b.lines++
	q.queued++
	if len(b.buf) >= q.batchBytes || q.queued >= q.maxLines {
		q.seal()
	}
	q.mu.Unlock()
	return true
}

// wait blocks, with mu held, until fewer than maxLines lines are queued,
// and counts the wait. The last waiter to leave once close has begun wakes
// close.
func (q *queue) wait() {
	q.waited.Add(1)
	q.waiters++
	for q.queued >= q.maxLines {
		q.room.Wait()
	}
	q.waiters--
	if q.closed && q.waiters == 0 {
		q.room.Broadcast()
	}
}

// close makes add refuse lines from now on, waits for the adds waiting for
// room to queue theirs (the writer goroutine keeps making room), and then
// closes the batches channel, so that no add sends on it afterwards. It is
// called once.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	for q.waiters > 0 {
		q.room.Wait()
	}
	close(q.batches)
	q.mu.Unlock()
}

// seal hands the current batch, which is not nil, to the writer goroutine;
// mu is held.
func (q *queue) seal() {
	select {
	case q.batches <- q.cur:
	default:
		panic("BUG: logsink: more batches queued than lines")
	}
	q.cur = nil
}

// takeCurrent is for the writer goroutine: it returns the number of
// batches in the channel, which the writer must receive before cur, and
// the current batch (nil if there is none), which Writes no longer see.
// Together they are every line queued when it is called.
func (q *queue) takeCurrent() (n int, cur *batch) {
	q.mu.Lock()
	n, cur = len(q.batches), q.cur
	q.cur = nil
	q.mu.Unlock()
	return n, cur
}

// release is for the writer goroutine: it gives back a batch it took,
// once done with its bytes (b.buf may be another buffer by then, of the
// same kind: whole lines, not needed any more). Its b.lines lines leave
// the queue, which wakes the adds waiting for room. The batch is reused
// unless its buffer is not of batchBytes (grown by a long line, or the
// writer's retry buffer).
func (q *queue) release(b *batch) {
	q.mu.Lock()
	q.queued -= b.lines
	if q.waiters > 0 {
		q.room.Broadcast()
	}
	q.mu.Unlock()
	if cap(b.buf) == q.batchBytes {
		b.buf, b.lines = b.buf[:0], 0
		q.free.Put(b)
	}
}
