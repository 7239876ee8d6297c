// Package keywatch watches a keys file and calls a reload function when
// it changes: through its directory (fsnotify), so that a rename over the
// file and the swap of a symlink on its path (Kubernetes Secret volumes)
// are seen as well as a write, with a fingerprint poll as a safety net.
package keywatch

import (
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/authgate/authgate/internal/netconn"
	"github.com/fsnotify/fsnotify"
)

// Timing of the watcher.
const (
	// Debounce is how long the watcher waits after the first
	// event of a burst before it looks at the keys file, so that the
	// several events of one rename, write or symlink swap reload once.
	Debounce = 100 * time.Millisecond

	// Poll is the interval at which the watcher also compares the
	// keys file's fingerprint with the last one, whatever the events say:
	// the safety net for what a directory watch cannot see.
	Poll = 500 * time.Millisecond
)

// Stamp is a file's fingerprint as os.Stat sees it, following symlinks:
// whether it exists, its device and inode, size, mtime and (on Linux) ctime.
// A rename over the file changes its inode, a write its size or times, a
// swap of a symlink on its path (Kubernetes' "..data") its device or inode.
// The zero value is a missing file.
type Stamp struct {
	exists       bool
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

// stampOf returns path's fingerprint; any error counts as a missing file.
func StampOf(path string) Stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return Stamp{}
	}
	dev, ino, ctime := netconn.FileIdentity(fi)
	return Stamp{
		exists: true,
		dev:    dev,
		ino:    ino,
		size:   fi.Size(),
		mtime:  fi.ModTime().UnixNano(),
		ctime:  ctime,
	}
}

// Watcher calls its reload function when a keys file changes.
//
// It watches the file's directory, not the file: editors and configuration
// management replace a file by renaming another over it, and Kubernetes
// updates a mounted Secret by swapping the "..data" symlink the file's path
// goes through; a watch on the file itself would stay on the old inode.
// Any event in the directory arms a timer of Debounce; when it fires, the
// watcher compares the file's fingerprint (Stamp) with the last one and
// calls reload if it changed, if the file appeared or disappeared, or if
// an event named the file itself (an in-place write within the
// filesystem's timestamp granularity keeps size and times). Events about
// other files of the directory cost one stat.
//
// Every Poll it also compares the fingerprint and re-adds the directory
// watch if it was lost. That covers a directory missing at start or
// removed later, a keys file that is a symlink into another directory,
// filesystems without inotify (NFS, some FUSE mounts) and an overflowed
// event queue, at the cost of one stat a poll.
//
// A failed reload is logged and not retried until the file changes again.
// One goroutine (plus fsnotify's reader) runs from Start until Stop.
type Watcher struct {
	reload func() error
	log    *slog.Logger
	path   string // the keys file, absolute
	dir    string // its directory, watched
	fsw    *fsnotify.Watcher
	last   Stamp // the fingerprint last acted on; owned by run

	stopOnce sync.Once
	stopc    chan struct{}
	done     chan struct{} // closed when run has returned
}

// Start starts watching the keys file at path, calling reload when it
// changes. loaded is the file's fingerprint taken before the keys in force
// were read, so that a change made while they were read is reloaded too.
// It never fails: without a usable directory watch it logs a warning to
// log and relies on the poll.
func Start(path string, loaded Stamp, reload func() error, log *slog.Logger) *Watcher {
	w := newWatcher(path, loaded, reload, log)
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("cannot watch the keys file's directory; polling the keys file instead",
			"file", path, "interval", Poll.String(), "err", err)
	} else {
		w.fsw = fsw
		if err := fsw.Add(w.dir); err != nil {
			log.Warn("cannot watch the keys file's directory; polling the keys file until it can",
				"dir", w.dir, "interval", Poll.String(), "err", err)
		}
	}
	var (
		events <-chan fsnotify.Event
		errs   <-chan error
	)
	if w.fsw != nil {
		events, errs = w.fsw.Events, w.fsw.Errors
	}
	go w.run(events, errs)
	return w
}

// newWatcher returns a Watcher of the keys file at path that is not
// running yet and watches nothing.
func newWatcher(path string, loaded Stamp, reload func() error, log *slog.Logger) *Watcher {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return &Watcher{
		reload: reload,
		log:    log,
		path:   path,
		dir:    filepath.Dir(path),
		last:   loaded,
		stopc:  make(chan struct{}),
		done:   make(chan struct{}),
	}
}

// Stop ends the watcher and waits until it has, including a reload in
// progress. It is idempotent and does nothing on a nil Watcher.
func (w *Watcher) Stop() {
	if w == nil {
		return
	}
	w.stopOnce.Do(func() { close(w.stopc) })
	<-w.done
}

// run is the watcher's goroutine: it takes the directory's events and
// errors from events and errs (w.fsw's, or nil without one).
func (w *Watcher) run(events <-chan fsnotify.Event, errs <-chan error) {
	defer close(w.done)
	if w.fsw != nil {
		defer w.fsw.Close()
	}
	watching := w.fsw != nil && len(w.fsw.WatchList()) > 0
	poll := time.NewTicker(Poll)
	defer poll.Stop()
	debounce := time.NewTimer(Debounce)
	debounce.Stop()
	defer debounce.Stop()
	armed, named := false, false
	arm := func() {
		if !armed {
			armed = true
			debounce.Reset(Debounce)
		}
	}

	for {
		select {
		case <-w.stopc:
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Name == w.path && ev.Op&(fsnotify.Create|fsnotify.Write|fsnotify.Rename|fsnotify.Remove) != 0 {
				named = true
			}
			arm()
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.log.Warn("keys file watch: event error; checking the file", "dir", w.dir, "err", err)
			arm()
		case <-poll.C:
			if w.fsw != nil {
				watching = w.rewatch(watching)
			}
			if StampOf(w.path) != w.last {
				arm()
			}
		case <-debounce.C:
			armed = false
			w.check(named)
			named = false
		}
	}
}

// rewatch re-adds the directory watch if it was lost (the directory was
// removed, moved or unmounted; inotify then drops the watch) and reports
// whether the directory is watched.
func (w *Watcher) rewatch(watching bool) bool {
	if len(w.fsw.WatchList()) > 0 {
		return true
	}
	if watching {
		w.log.Warn("keys file's directory is no longer watched; polling the keys file until it can be watched again",
			"dir", w.dir, "interval", Poll.String())
	}
	if err := w.fsw.Add(w.dir); err != nil {
		return false
	}
	w.log.Info("watching the keys file's directory", "dir", w.dir)
	return true
}

// check reloads the keys if the file's fingerprint changed since the last
// check, or if force is set.
func (w *Watcher) check(force bool) {
	s := StampOf(w.path)
	if s == w.last && !force {
		return
	}
	w.last = s
	if err := w.reload(); err != nil {
		w.log.Error("keys reload failed", "trigger", "keys file changed", "file", w.path, "err", err)
		return
	}
	w.log.Info("keys reloaded", "trigger", "keys file changed", "file", w.path)
}
