package server

import (
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Timing of the keys file watcher (Config.WatchKeysFile).
const (
	// keysWatchDebounce is how long the watcher waits after the first
	// event of a burst before it looks at the keys file, so that the
	// several events of one rename, write or symlink swap reload once.
	keysWatchDebounce = 100 * time.Millisecond

	// keysWatchPoll is the interval at which the watcher also compares the
	// keys file's fingerprint with the last one, whatever the events say:
	// the safety net for what a directory watch cannot see.
	keysWatchPoll = 500 * time.Millisecond
)

// fileStamp is a file's fingerprint as os.Stat sees it, following symlinks:
// whether it exists, its device and inode, size, mtime and (on Linux) ctime.
// A rename over the file changes its inode, a write its size or times, a
// swap of a symlink on its path (Kubernetes' "..data") its device or inode.
// The zero value is a missing file.
type fileStamp struct {
	exists       bool
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

// stampOf returns path's fingerprint; any error counts as a missing file.
func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	dev, ino, ctime := statIdentity(fi)
	return fileStamp{
		exists: true,
		dev:    dev,
		ino:    ino,
		size:   fi.Size(),
		mtime:  fi.ModTime().UnixNano(),
		ctime:  ctime,
	}
}

// keysWatcher reloads a Gateway's keys when its keys file changes.
//
// It watches the file's directory, not the file: editors and configuration
// management replace a file by renaming another over it, and Kubernetes
// updates a mounted Secret by swapping the "..data" symlink the file's path
// goes through; a watch on the file itself would stay on the old inode.
// Any event in the directory arms a timer of keysWatchDebounce; when it
// fires, the watcher compares the file's fingerprint (fileStamp) with the
// last one and calls Gateway.Reload if it changed, if the file appeared or
// disappeared, or if an event named the file itself (an in-place write
// within the filesystem's timestamp granularity keeps size and times).
// Events about other files of the directory cost one stat.
//
// Every keysWatchPoll it also compares the fingerprint and re-adds the
// directory watch if it was lost. That covers a directory missing at start
// or removed later, a keys file that is a symlink into another directory,
// filesystems without inotify (NFS, some FUSE mounts) and an overflowed
// event queue, at the cost of one stat a poll.
//
// Reload failures are logged and keep the last good keys (Reload never
// fails open). A failed reload is not retried until the file changes again
// or SIGHUP asks for it. One goroutine (plus fsnotify's reader) runs from
// startKeysWatcher until stop.
type keysWatcher struct {
	g    *Gateway
	path string // the keys file, absolute
	dir  string // its directory, watched
	fsw  *fsnotify.Watcher
	last fileStamp // the fingerprint last acted on; owned by run

	stopOnce sync.Once
	stopc    chan struct{}
	done     chan struct{} // closed when run has returned
}

// watchesKeysFile reports whether the gateway's configuration asks for a
// keys file watcher: WatchKeysFile, a keys file, no in-memory keys, and
// authentication on.
func (c *Config) watchesKeysFile() bool {
	return c.WatchKeysFile && c.KeysFile != "" && c.Keys == nil && c.KeySource == nil && !c.DisableAuth
}

// startKeysWatcher starts watching g's keys file. loaded is the file's
// fingerprint taken before the keys in force were read, so that a change
// made while they were read is reloaded too. It never fails: without a
// usable directory watch it logs a warning and relies on the poll.
func startKeysWatcher(g *Gateway, loaded fileStamp) *keysWatcher {
	path := g.cfg.KeysFile
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	w := &keysWatcher{
		g:     g,
		path:  path,
		dir:   filepath.Dir(path),
		last:  loaded,
		stopc: make(chan struct{}),
		done:  make(chan struct{}),
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		g.log.Warn("cannot watch the keys file's directory; polling the keys file instead",
			"file", path, "interval", keysWatchPoll.String(), "err", err)
	} else {
		w.fsw = fsw
		if err := fsw.Add(w.dir); err != nil {
			g.log.Warn("cannot watch the keys file's directory; polling the keys file until it can",
				"dir", w.dir, "interval", keysWatchPoll.String(), "err", err)
		}
	}
	go w.run()
	return w
}

// stop ends the watcher and waits until it has, including a reload in
// progress. It is idempotent and does nothing on a nil watcher.
func (w *keysWatcher) stop() {
	if w == nil {
		return
	}
	w.stopOnce.Do(func() { close(w.stopc) })
	<-w.done
}

// run is the watcher's goroutine.
func (w *keysWatcher) run() {
	defer close(w.done)
	var (
		events <-chan fsnotify.Event
		errs   <-chan error
	)
	if w.fsw != nil {
		defer w.fsw.Close()
		events, errs = w.fsw.Events, w.fsw.Errors
	}
	watching := w.fsw != nil && len(w.fsw.WatchList()) > 0
	poll := time.NewTicker(keysWatchPoll)
	defer poll.Stop()
	debounce := time.NewTimer(keysWatchDebounce)
	debounce.Stop()
	defer debounce.Stop()
	armed, named := false, false
	arm := func() {
		if !armed {
			armed = true
			debounce.Reset(keysWatchDebounce)
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
			w.g.log.Warn("keys file watch: event error; checking the file", "dir", w.dir, "err", err)
			arm()
		case <-poll.C:
			if w.fsw != nil {
				watching = w.rewatch(watching)
			}
			if stampOf(w.path) != w.last {
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
func (w *keysWatcher) rewatch(watching bool) bool {
	if len(w.fsw.WatchList()) > 0 {
		return true
	}
	if watching {
		w.g.log.Warn("keys file's directory is no longer watched; polling the keys file until it can be watched again",
			"dir", w.dir, "interval", keysWatchPoll.String())
	}
	if err := w.fsw.Add(w.dir); err != nil {
		return false
	}
	w.g.log.Info("watching the keys file's directory", "dir", w.dir)
	return true
}

// check reloads the keys if the file's fingerprint changed since the last
// check, or if force is set.
func (w *keysWatcher) check(force bool) {
	s := stampOf(w.path)
	if s == w.last && !force {
		return
	}
	w.last = s
	if err := w.g.Reload(); err != nil {
		w.g.log.Error("keys reload failed", "trigger", "keys file changed", "file", w.path, "err", err)
		return
	}
	keys := w.g.keys.Load().keys
	w.g.log.Info("keys reloaded", "trigger", "keys file changed", "file", w.path,
		"keys", keys.Len(), "key_ids", len(keys.Identities()))
}
