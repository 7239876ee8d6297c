package server_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authgate/authgate/server"
)

// watchWait bounds every wait for the keys file watcher, generously for a
// loaded machine: these tests never assert durations. When a change
// applies (docs/keys-file.md#reloading) is internal/keywatch's test, on a
// fake clock.
const watchWait = 10 * time.Second

// keyAliceSameLen has keyAlice's length: a file that swaps one for the
// other keeps its size.
const keyAliceSameLen = "sk-alice-9876543210fedcba"

// logCapture is a slog destination that a test can wait on.
type logCapture struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newLogCapture() *logCapture { return &logCapture{changed: make(chan struct{})} }

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.changed)
	l.changed = make(chan struct{})
	return l.buf.Write(p)
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor waits until the log holds s at least n times, failing the test
// after watchWait.
func (l *logCapture) waitFor(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.NewTimer(watchWait)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		ok := strings.Count(l.buf.String(), s) >= n
		ch := l.changed
		l.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("the log does not show %q %d times within %v:\n%s", s, n, watchWait, l.String())
		}
	}
}

// checkNoKeys fails the test if the log shows any of keys.
func (l *logCapture) checkNoKeys(t *testing.T, keys ...string) {
	t.Helper()
	s := l.String()
	for _, k := range keys {
		if strings.Contains(s, k) {
			t.Errorf("the log shows key %q:\n%s", k, s)
		}
	}
}

// startWatched starts a gateway that watches the keys file at path, with
// its log captured.
func startWatched(t *testing.T, path string, cfg server.Config) (*gateway, *logCapture) {
	t.Helper()
	logs := newLogCapture()
	cfg.KeysFile = path
	cfg.WatchKeysFile = true
	cfg.Upstreams = []string{startUpstream(t, (&seen{}).handler(200, "{}"))}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	return startGateway(t, cfg), logs
}

// status is the status of GET /v1/models with key ("" for none).
func status(t *testing.T, g *gateway, key string) int {
	t.Helper()
	authz := ""
	if key != "" {
		authz = "Bearer " + key
	}
	resp, _ := do(t, "GET", g.url+"/v1/models", authz, "")
	return resp.StatusCode
}

// awaitStatus polls until key gets want, failing the test after watchWait.
func awaitStatus(t *testing.T, g *gateway, key string, want int, what string) {
	t.Helper()
	deadline := time.NewTimer(watchWait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		got := status(t, g, key)
		if got == want {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("%s: still %d, not %d, %v later", what, got, want, watchWait)
		case <-tick.C:
		}
	}
}

// writeRenamed replaces path by content as configuration management does:
// a temporary file in the same directory renamed over it.
func writeRenamed(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestWatchRename(t *testing.T) {
	path := keysFile(t, "alice:"+keyAlice+"\n")
	g, logs := startWatched(t, path, server.Config{})
	if s := status(t, g, keyAlice); s != http.StatusOK {
		t.Fatalf("alice before the change: %d", s)
	}

	writeRenamed(t, path, "bob:"+keyBob+"\n")
	awaitStatus(t, g, keyBob, http.StatusOK, "bob's key renamed into the keys file")
	if s := status(t, g, keyAlice); s != http.StatusUnauthorized {
		t.Errorf("alice's removed key: %d, want 401", s)
	}
	logs.waitFor(t, "keys reloaded", 1)
	if s := logs.String(); !strings.Contains(s, "keys=1 key_ids=1") {
		t.Errorf("the reload's log line does not count keys and key_ids:\n%s", s)
	}
	logs.checkNoKeys(t, keyAlice, keyBob)
}

func TestWatchInPlaceWrite(t *testing.T) {
	path := keysFile(t, "alice:"+keyAlice+"\n")
	g, logs := startWatched(t, path, server.Config{})
	if s := status(t, g, keyAlice); s != http.StatusOK {
		t.Fatalf("alice before the change: %d", s)
	}

	writeFile(t, path, "alice:"+keyAlice+"\nbob:"+keyBob+"\n") // truncates and writes the same inode
	awaitStatus(t, g, keyBob, http.StatusOK, "bob's key written into the keys file")
	writeFile(t, path, "bob:"+keyBob+"\n")
	awaitStatus(t, g, keyAlice, http.StatusUnauthorized, "alice's key removed in place")
	if s := status(t, g, keyBob); s != http.StatusOK {
		t.Errorf("bob after the second write: %d", s)
	}
	logs.checkNoKeys(t, keyAlice, keyBob)
}

// TestWatchKubernetesSecret: a Secret volume holds api_keys.txt ->
// ..data/api_keys.txt and ..data -> ..<timestamp>; the kubelet updates it
// by writing a new timestamped directory, renaming a new symlink over
// ..data and removing the old directory. The file keeps its size here, so
// only its identity tells the change.
func TestWatchKubernetesSecret(t *testing.T) {
	dir := t.TempDir()
	mkVersion := func(name, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "api_keys.txt"), content)
	}
	swapData := func(name string) {
		t.Helper()
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	mkVersion("..2026_v1", "alice:"+keyAlice+"\n")
	if err := os.Symlink("..2026_v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "api_keys.txt")
	if err := os.Symlink(filepath.Join("..data", "api_keys.txt"), path); err != nil {
		t.Fatal(err)
	}
	g, logs := startWatched(t, path, server.Config{})
	if s := status(t, g, keyAlice); s != http.StatusOK {
		t.Fatalf("alice before the update: %d", s)
	}

	mkVersion("..2026_v2", "alice:"+keyAliceSameLen+"\n")
	swapData("..2026_v2")
	if err := os.RemoveAll(filepath.Join(dir, "..2026_v1")); err != nil {
		t.Fatal(err)
	}
	awaitStatus(t, g, keyAliceSameLen, http.StatusOK, "the key of the Secret's new version")
	if s := status(t, g, keyAlice); s != http.StatusUnauthorized {
		t.Errorf("the key of the Secret's old version: %d, want 401", s)
	}

	// And a second update, so that the watch survived the first.
	mkVersion("..2026_v3", "bob:"+keyBob+"\n")
	swapData("..2026_v3")
	awaitStatus(t, g, keyBob, http.StatusOK, "the key of the Secret's third version")
	logs.checkNoKeys(t, keyAlice, keyAliceSameLen, keyBob)
}

func TestWatchBadFileKeepsKeys(t *testing.T) {
	path := keysFile(t, "alice:"+keyAlice+"\n")
	g, logs := startWatched(t, path, server.Config{})

	const leak = "sk-key-on-a-bad-line-000000" // a key on a line that is invalid
	writeRenamed(t, path, "garbage\n"+leak+"\nbob:tinysecret1\n")
	logs.waitFor(t, "keys reload failed", 1)
	if s := status(t, g, keyAlice); s != http.StatusOK {
		t.Errorf("the last good key after a broken file: %d, want 200", s)
	}
	if s := status(t, g, ""); s != http.StatusUnauthorized {
		t.Errorf("no key after a broken file: %d, want 401 (a reload never fails open)", s)
	}
	if s := logs.String(); !strings.Contains(s, "line=1") || !strings.Contains(s, "line=3") {
		t.Errorf("the log does not name the bad lines:\n%s", s)
	}

	writeRenamed(t, path, "bob:"+keyBob+"\n")
	awaitStatus(t, g, keyBob, http.StatusOK, "a good file after a broken one")
	if s := status(t, g, keyAlice); s != http.StatusUnauthorized {
		t.Errorf("alice's removed key: %d, want 401", s)
	}
	logs.checkNoKeys(t, keyAlice, keyBob, leak, "tinysecret1")
}

func TestWatchDeletedFileKeepsKeys(t *testing.T) {
	path := keysFile(t, "alice:"+keyAlice+"\n")
	g, logs := startWatched(t, path, server.Config{})

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, "keys reload failed", 1)
	if s := status(t, g, keyAlice); s != http.StatusOK {
		t.Errorf("the last good key after the file was deleted: %d, want 200", s)
	}
	if !g.Ready() {
		t.Error("not ready after the keys file was deleted, though its keys are still in force")
	}

	writeFile(t, path, "bob:"+keyBob+"\n")
	awaitStatus(t, g, keyBob, http.StatusOK, "a keys file created again")
	if s := status(t, g, keyAlice); s != http.StatusUnauthorized {
		t.Errorf("alice's removed key: %d, want 401", s)
	}
	logs.checkNoKeys(t, keyAlice, keyBob)
}

// TestWatchSymlinkElsewhere: the keys file is a symlink into another
// directory, where the change happens. The watched directory sees no event;
// the fingerprint poll must.
func TestWatchSymlinkElsewhere(t *testing.T) {
	target := keysFile(t, "alice:"+keyAlice+"\n")
	path := filepath.Join(t.TempDir(), "api_keys.txt")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	g, _ := startWatched(t, path, server.Config{})

	writeRenamed(t, target, "bob:"+keyBob+"\n")
	awaitStatus(t, g, keyBob, http.StatusOK, "a key renamed into the symlink's target")
}

// TestWatchMissingDirectory: the keys file's directory does not exist at
// start (fail-open mode, or New would refuse); the watcher polls, and
// watches the directory once it appears.
func TestWatchMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	path := filepath.Join(dir, "api_keys.txt")
	g, logs := startWatched(t, path, server.Config{AllowNoKeys: true})
	if s := logs.String(); !strings.Contains(s, "polling the keys file") {
		t.Errorf("no warning that the directory cannot be watched:\n%s", s)
	}
	if s := status(t, g, ""); s != http.StatusOK {
		t.Fatalf("fail-open without a keys file: %d", s)
	}

	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeRenamed(t, path, "alice:"+keyAlice+"\n")
	awaitStatus(t, g, "", http.StatusUnauthorized, "a request without a key once a keys file appeared")
	if s := status(t, g, keyAlice); s != http.StatusOK {
		t.Errorf("alice: %d", s)
	}

	// The directory is watched now: the next change comes by event.
	logs.waitFor(t, "watching the keys file's directory", 1)
	writeRenamed(t, path, "bob:"+keyBob+"\n")
	awaitStatus(t, g, keyBob, http.StatusOK, "a key renamed into the directory created late")
}

// TestWatchWithConcurrentReloads: reloads asked for by SIGHUP (Reload) while
// the watcher reloads the same changes are serialised, and the last file
// written wins.
func TestWatchWithConcurrentReloads(t *testing.T) {
	path := keysFile(t, "alice:"+keyAlice+"\n")
	g, _ := startWatched(t, path, server.Config{})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond) // paces the reloads; no synchronisation
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := g.Reload(); err != nil { // a rename is atomic: every read sees a whole file
				t.Errorf("Reload: %v", err)
				return
			}
		}
	}()
	versions := []string{keyBob, keyAlice2, keyAliceSameLen, keyAlice}
	prev := keyAlice
	for _, k := range versions {
		writeRenamed(t, path, "alice:"+k+"\n")
		awaitStatus(t, g, k, http.StatusOK, "the newest key, with concurrent reloads")
		if k != prev {
			if s := status(t, g, prev); s != http.StatusUnauthorized {
				t.Errorf("the previous key: %d, want 401", s)
			}
		}
		prev = k
	}
	close(stop)
	<-done
}

// TestCloseStopsKeysWatcher: Close ends the watcher's goroutines (its own and
// fsnotify's), so gateways built and closed leave no goroutine behind. Each
// gateway first shows that its watcher runs by reloading a change.
func TestCloseStopsKeysWatcher(t *testing.T) {
	path := keysFile(t, "alice:"+keyAlice+"\n")
	before := runtime.NumGoroutine()
	for i := 0; i < 3; i++ {
		logs := newLogCapture()
		g, err := server.New(server.Config{
			KeysFile:            path,
			WatchKeysFile:       true,
			Upstreams:           []string{"http://127.0.0.1:1"},
			HealthCheckInterval: -1, // no health checker goroutine
			Logger:              slog.New(slog.NewTextHandler(logs, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		writeRenamed(t, path, fmt.Sprintf("alice%d:%s\n", i, keyAlice))
		logs.waitFor(t, "keys reloaded", 1)
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		if err := g.Close(); err != nil { // idempotent
			t.Fatal(err)
		}
	}
	deadline := time.NewTimer(watchWait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > before {
		select {
		case <-deadline.C:
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines %v after Close, %d before New:\n%s",
				runtime.NumGoroutine(), watchWait, before, buf[:runtime.Stack(buf, true)])
		case <-tick.C:
		}
	}
}
