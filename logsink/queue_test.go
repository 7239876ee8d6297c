package logsink

import (
	"os"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// recordWrites returns a write hook that writes for real and records the
// length of every write(2), and a function that returns those lengths.
func recordWrites() (func(*os.File, []byte) (int, error), func() []int) {
	var mu sync.Mutex
	var sizes []int
	hook := func(f *os.File, b []byte) (int, error) {
		mu.Lock()
		sizes = append(sizes, len(b))
		mu.Unlock()
		return f.Write(b)
	}
	return hook, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(sizes)
	}
}

func TestSinkBatchBoundary(t *testing.T) {
	// Lines entry(0, 10) to entry(0, 99) are all L bytes long. With no
	// tick during the test, a batch reaches write(2) only when Write hands
	// it over, or when Flush or Close takes the partial one: the lengths
	// of the writes show where the batches were cut.
	L := len(entryLine(0, 10)) + 1
	f := func(batchBytes, lines int, end string, want ...int) {
		t.Helper()
		hook, sizes := recordWrites()
		s, path, _ := newHookedSink(t, Config{BatchBytes: batchBytes, FlushInterval: time.Hour}, testHooks{write: hook})
		for i := range lines {
			mustWrite(t, s, entry(0, 10+i))
		}
		switch end {
		case "Flush":
			if err := s.Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}
		case "Close":
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		for i := range want {
			want[i] *= L
		}
		if got := sizes(); !slices.Equal(got, want) {
			t.Fatalf("BatchBytes %d, %d lines, %s: writes of %v bytes, want %v", batchBytes, lines, end, got, want)
		}
		wantLines(t, path, readLines(t, path), 0, 10, 10+lines)
		if st := s.Stats(); st != (Stats{Written: uint64(lines)}) {
			t.Fatalf("Stats = %+v", st)
		}
	}
	for _, end := range []string{"Flush", "Close"} {
		// Exactly at the boundary: the third line fills the batch, which
		// is handed over with it; the seventh is a partial batch.
		f(3*L, 7, end, 3, 3, 1)
		f(3*L, 6, end, 3, 3)
		// One byte more: the fourth line does not fit, so the batch is
		// handed over before it.
		f(3*L+1, 7, end, 3, 3, 1)
		// One byte less: the third line does not fit.
		f(3*L-1, 7, end, 2, 2, 2, 1)
		// A line longer than a batch is a batch of its own.
		f(L/2, 3, end, 1, 1, 1)
		// Only a partial batch.
		f(DefaultBatchBytes, 5, end, 5)
		f(DefaultBatchBytes, 1, end, 1)
	}
	// Nothing written at all.
	f(0, 0, "Flush")
	f(0, 0, "Close")
}

func TestSinkBlocksWhenQueueFull(t *testing.T) {
	// The writer goroutine is held in its first write(2), so no line
	// leaves the queue: BufferLines Writes return, the next one blocks and
	// is counted in Stats.Waited, and returns once the writer goes on.
	const bufferLines = 4
	L := len(entryLine(0, 10)) + 1
	f := func(name string, batchBytes int, hold func(t *testing.T, s *Sink) (done func())) {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				entered, release := make(chan struct{}), make(chan struct{})
				var once sync.Once
				s, path, _ := newHookedSink(t, Config{BufferLines: bufferLines, BatchBytes: batchBytes, FlushInterval: time.Hour}, testHooks{
					write: func(f *os.File, b []byte) (int, error) {
						once.Do(func() {
							close(entered)
							<-release
						})
						return f.Write(b)
					},
				})
				// Line 10 reaches write(2), which holds the writer.
				mustWrite(t, s, entry(0, 10))
				holdDone := hold(t, s)
				<-entered
				for i := 11; i < 11+bufferLines; i++ {
					mustWrite(t, s, entry(0, i)) // the queue has room
				}
				if st := s.Stats(); st.Waited != 0 {
					t.Fatalf("Stats before the queue is full = %+v", st)
				}
				blocked := make(chan error)
				go func() { blocked <- s.Write(entry(0, 11+bufferLines)) }()
				synctest.Wait() // the Write is blocked, or has returned
				if st := s.Stats(); st.Waited != 1 {
					t.Fatalf("Stats with a Write on a full queue = %+v, want it counted in Waited", st)
				}
				select {
				case err := <-blocked:
					t.Fatalf("Write on a full queue returned %v while the writer is held", err)
				default:
				}
				close(release)
				if err := <-blocked; err != nil {
					t.Fatalf("blocked Write: %v", err)
				}
				holdDone()
				if err := s.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				wantLines(t, path, readLines(t, path), 0, 10, 12+bufferLines)
				if st := s.Stats(); st != (Stats{Written: 2 + bufferLines, Waited: 1}) {
					t.Fatalf("Stats = %+v", st)
				}
			})
		})
	}
	// A line a batch: line 10's batch is handed over at once, and the
	// next four fill the queue with four batches.
	f("full batches", L, func(*testing.T, *Sink) func() { return func() {} })
	// Large batches: a Flush takes line 10's partial batch; the next four
	// lines fill the queue, which hands their batch over though it is not
	// full.
	f("partial batches", DefaultBatchBytes, func(t *testing.T, s *Sink) func() {
		flushed := make(chan error)
		go func() { flushed <- s.Flush() }()
		return func() {
			if err := <-flushed; err != nil {
				t.Errorf("Flush: %v", err)
			}
		}
	})
}

func TestSinkReopenBetweenBatches(t *testing.T) {
	// Lines in batches handed over and in the partial batch go to the old
	// file; the lines after Reopen to the new one, in the same batch
	// sizes.
	synctest.Test(t, func(t *testing.T) {
		L := len(entryLine(0, 10)) + 1
		s, path, _ := newTestSink(t, Config{BatchBytes: 3 * L, FlushInterval: time.Hour})
		for i := 10; i < 17; i++ {
			mustWrite(t, s, entry(0, i))
		}
		rotated := path + ".1"
		if err := os.Rename(path, rotated); err != nil {
			t.Fatal(err)
		}
		if err := s.Reopen(); err != nil {
			t.Fatalf("Reopen: %v", err)
		}
		for i := 17; i < 24; i++ {
			mustWrite(t, s, entry(0, i))
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		wantLines(t, "old file", readLines(t, rotated), 0, 10, 17)
		wantLines(t, "new file", readLines(t, path), 0, 17, 24)
	})
}

func TestSinkPartialBatchOnTick(t *testing.T) {
	// A partial batch, behind a full one handed over, reaches the file on
	// the next tick, without Flush or Close; the full one at once.
	L := len(entryLine(0, 10)) + 1
	synctest.Test(t, func(t *testing.T) {
		const interval = 20 * time.Millisecond
		s, path, _ := newTestSink(t, Config{BatchBytes: 3 * L, FlushInterval: interval})
		for i := 10; i < 14; i++ {
			mustWrite(t, s, entry(0, i))
		}
		advance(interval - time.Nanosecond)
		if st := s.Stats(); st.Written != 3 {
			t.Fatalf("1 ns before the tick: %d lines written, want the full batch's 3", st.Written)
		}
		advance(time.Nanosecond)
		if st := s.Stats(); st.Written != 4 {
			t.Fatalf("at the tick: %d lines written, want 4", st.Written)
		}
		wantLines(t, path, readLines(t, path), 0, 10, 14)
	})
}

func TestSinkFlushTakesHandedOverBatches(t *testing.T) {
	// Full batches wait in the channel behind a held write(2) when Flush
	// is called, and a partial batch behind them: Flush returns with all
	// of them written, in order. The writer's select may see the Flush
	// before the batches, so the round is repeated.
	L := len(entryLine(0, 10)) + 1
	for round := range 20 {
		entered, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		s, path, _ := newHookedSink(t, Config{BatchBytes: 2 * L, FlushInterval: time.Hour}, testHooks{
			write: func(f *os.File, b []byte) (int, error) {
				once.Do(func() {
					close(entered)
					<-release
				})
				return f.Write(b)
			},
		})
		for i := 10; i < 12; i++ {
			mustWrite(t, s, entry(0, i)) // a full batch, whose write is held
		}
		<-entered
		for i := 12; i < 17; i++ {
			mustWrite(t, s, entry(0, i)) // two full batches and a partial one
		}
		flushed := make(chan error)
		go func() { flushed <- s.Flush() }()
		close(release)
		if err := <-flushed; err != nil {
			t.Fatalf("round %d: Flush: %v", round, err)
		}
		if st := s.Stats(); st.Written != 7 {
			t.Fatalf("round %d: Stats after Flush = %+v", round, st)
		}
		wantLines(t, path, readLines(t, path), 0, 10, 17)
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
	}
}
