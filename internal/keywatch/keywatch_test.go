package keywatch

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fsnotify/fsnotify"
)

// The watcher's timing (docs/keys-file.md#reloading) is tested in a
// synctest bubble, on its fake clock: a Watcher runs with event and error
// channels the test feeds, as fsnotify would, and a real keys file. (A
// real fsnotify watcher reads in the background, which would keep the
// bubble's clock from moving; the server's tests use a real one.)

// The keys files the tests write differ in size, so that a change is seen
// even within the filesystem's timestamp granularity.

// rig is a running Watcher of a keys file in a temporary directory.
type rig struct {
	t       *testing.T
	path    string
	events  chan fsnotify.Event
	errs    chan error
	reloads atomic.Int32
	fail    atomic.Bool // reload returns an error
	logs    lockedBuffer
}

// startRig writes content to a new keys file and starts watching it, with
// the fingerprint taken before the keys were "loaded", as the server does.
// It must be called in a bubble; the watcher is stopped at the end of the
// test.
func startRig(t *testing.T, content string) *rig {
	t.Helper()
	r := &rig{
		t:      t,
		path:   filepath.Join(t.TempDir(), "api_keys.txt"),
		events: make(chan fsnotify.Event),
		errs:   make(chan error),
	}
	r.write(content)
	reload := func() error {
		r.reloads.Add(1)
		if r.fail.Load() {
			return errors.New("no valid key")
		}
		return nil
	}
	w := newWatcher(r.path, StampOf(r.path), reload, slog.New(slog.NewTextHandler(&r.logs, nil)))
	go w.run(r.events, r.errs)
	t.Cleanup(w.Stop)
	return r
}

// write replaces the keys file's content in place.
func (r *rig) write(content string) {
	r.t.Helper()
	if err := os.WriteFile(r.path, []byte(content), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// event delivers an event about name in the keys file's directory.
func (r *rig) event(name string, op fsnotify.Op) {
	r.events <- fsnotify.Event{Name: filepath.Join(filepath.Dir(r.path), name), Op: op}
}

// after lets d pass on the bubble's clock, lets the watcher act on it,
// and checks how many reloads it has made in all.
func (r *rig) after(d time.Duration, wantReloads int32, what string) {
	r.t.Helper()
	time.Sleep(d)
	synctest.Wait()
	if got := r.reloads.Load(); got != wantReloads {
		r.t.Fatalf("%s: %d reloads, want %d", what, got, wantReloads)
	}
}

// lockedBuffer is a log destination the test reads while the watcher
// writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A burst of events reloads once, Debounce after its first event: not a
// nanosecond sooner, and not again for the burst's later events.
func TestDebounceBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, "alice:sk-alice-0123456789abcdef\n")
		r.write("bob:sk-bob-0123456789abcdef\n")
		// An editor's save: a temporary file written, renamed over the
		// keys file.
		r.event(".api_keys.txt.tmp", fsnotify.Create)
		r.after(30*time.Millisecond, 0, "30 ms into the burst")
		r.event(".api_keys.txt.tmp", fsnotify.Write)
		r.after(30*time.Millisecond, 0, "60 ms into the burst")
		r.event("api_keys.txt", fsnotify.Create)
		r.after(Debounce-60*time.Millisecond-time.Nanosecond, 0, "1 ns before Debounce")
		r.after(time.Nanosecond, 1, "Debounce after the first event")
		// Polls see the fingerprint reloaded: nothing more.
		r.after(3*Poll, 1, "three polls later")
		// The next burst is debounced on its own.
		r.write("carol:sk-carol-0123456789abcdef0123456\n")
		r.event("api_keys.txt", fsnotify.Write)
		r.after(Debounce-time.Nanosecond, 1, "1 ns before the second burst's Debounce")
		r.after(time.Nanosecond, 2, "the second burst's Debounce")
		if s := r.logs.String(); strings.Count(s, "keys reloaded") != 2 {
			t.Errorf("log:\n%s\nwant two reloads logged", s)
		}
	})
}

// Events that name other files of the directory cost a look at the keys
// file, and reload it only if it changed: a Kubernetes Secret's update
// renames "..data" and never names the file.
func TestOtherFilesEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, "alice:sk-alice-0123456789abcdef\n")
		r.event("unrelated.txt", fsnotify.Create)
		r.after(Debounce, 0, "an event about another file, the keys file unchanged")
		r.after(2*Poll, 0, "two polls later")

		r.write("bob:sk-bob-0123456789abcdef\n")
		r.event("..data", fsnotify.Rename)
		r.after(Debounce-time.Nanosecond, 0, "1 ns before Debounce")
		r.after(time.Nanosecond, 1, "Debounce after an event about ..data, the keys file changed")
	})
}

// An event naming the keys file reloads it even if its fingerprint did
// not change: an in-place write within the filesystem's timestamp
// granularity keeps size and times.
func TestNamedEventForcesReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, "alice:sk-alice-0123456789abcdef\n")
		r.event("api_keys.txt", fsnotify.Write)
		r.after(Debounce-time.Nanosecond, 0, "1 ns before Debounce")
		r.after(time.Nanosecond, 1, "Debounce after an event naming the keys file")
		r.event("api_keys.txt", fsnotify.Chmod) // not a change of content
		r.after(Debounce, 1, "Debounce after a chmod of the unchanged keys file")
	})
}

// Without events (a directory that cannot be watched, a keys file that is
// a symlink into another directory, NFS), the poll notices a change: at
// the first poll after it, plus Debounce, so at most Poll+Debounce (0.6 s)
// after the change.
func TestPollWithoutEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, "alice:sk-alice-0123456789abcdef\n")
		r.write("bob:sk-bob-0123456789abcdef\n") // at 0, just after a poll would have been
		r.after(Poll+Debounce-time.Nanosecond, 0, "1 ns before Poll+Debounce")
		r.after(time.Nanosecond, 1, "Poll+Debounce after the change")

		// A change just before a poll is reloaded Debounce after it.
		r.after(Poll-Debounce-time.Millisecond, 1, "until 1 ms before the next poll")
		r.write("carol:sk-carol-0123456789abcdef0123456\n")
		r.after(time.Millisecond+Debounce-time.Nanosecond, 1, "1 ns before that poll's Debounce")
		r.after(time.Nanosecond, 2, "that poll's Debounce")

		// A file that disappears is a change too (the reload keeps the
		// last good keys, its caller's business).
		if err := os.Remove(r.path); err != nil {
			t.Fatal(err)
		}
		r.after(Poll+Debounce, 3, "Poll+Debounce after the file was removed")
	})
}

// A failed reload is logged and not retried until the file changes again.
func TestFailedReloadNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, "alice:sk-alice-0123456789abcdef\n")
		r.fail.Store(true)
		r.write("garbage\n")
		r.event("api_keys.txt", fsnotify.Write)
		r.after(Debounce, 1, "Debounce after a bad file was written")
		if s := r.logs.String(); !strings.Contains(s, "keys reload failed") {
			t.Fatalf("log:\n%s\nwant the failure logged", s)
		}
		r.after(5*Poll, 1, "five polls later")

		r.fail.Store(false)
		r.write("bob:sk-bob-0123456789abcdef\n")
		r.after(Poll+Debounce, 2, "Poll+Debounce after a good file was written")
	})
}

// An error from the directory watch (an overflowed queue, say) makes the
// watcher look at the file, Debounce later.
func TestWatchErrorChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, "alice:sk-alice-0123456789abcdef\n")
		r.write("bob:sk-bob-0123456789abcdef\n")
		r.errs <- fsnotify.ErrEventOverflow
		r.after(Debounce-time.Nanosecond, 0, "1 ns before Debounce")
		r.after(time.Nanosecond, 1, "Debounce after a watch error")
		if s := r.logs.String(); !strings.Contains(s, "event error") {
			t.Errorf("log:\n%s\nwant the watch error logged", s)
		}
	})
}

// A change made after the fingerprint was taken and before the watcher
// started (while the keys were being loaded) is reloaded.
func TestChangeWhileLoading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "api_keys.txt")
		if err := os.WriteFile(path, []byte("alice:sk-alice-0123456789abcdef\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		loaded := StampOf(path)
		if err := os.WriteFile(path, []byte("bob:sk-bob-0123456789abcdef\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var reloads atomic.Int32
		w := newWatcher(path, loaded, func() error { reloads.Add(1); return nil }, slog.New(slog.DiscardHandler))
		go w.run(nil, nil)
		time.Sleep(Poll + Debounce)
		synctest.Wait()
		if n := reloads.Load(); n != 1 {
			t.Fatalf("%d reloads Poll+Debounce after start, want 1", n)
		}
		w.Stop()
		w.Stop() // idempotent
	})
}
