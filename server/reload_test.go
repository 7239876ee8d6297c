package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/server"
)

// loadClients is the number of client goroutines of a reload-under-load run.
const loadClients = 16

// loadClientKey is the key of client i: present in every generation of
// the keys file, with a limit no run reaches.
func loadClientKey(i int) string { return fmt.Sprintf("sk-load-client-%04d-0123456789", i) }

// writeLoadKeys writes a keys file of n keys spread over ids key_ids: the
// loadClients client keys, then n-loadClients keys of generation gen, so
// that files of two generations differ in all but the client keys.
func writeLoadKeys(tb testing.TB, path, gen string, n, ids int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < loadClients; i++ {
		fmt.Fprintf(w, "client%d:%s rpm=10000000\n", i, loadClientKey(i))
	}
	for i := loadClients; i < n; i++ {
		fmt.Fprintf(w, "id%d:sk-gen-%s-%010d\n", i%ids, gen, i)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// reloadRig is a gateway whose keys file is a symlink to one of two
// generations, each of n keys, under load from loadClients goroutines.
type reloadRig struct {
	gw    *server.Gateway
	path  string    // the keys file: a symlink
	gens  [2]string // the two generations
	cur   int       // the generation path points to
	stop  chan struct{}
	wg    sync.WaitGroup
	phase atomic.Int32 // 0 before reloads, 1 during them, 2 after

	failed   atomic.Int64
	firstErr atomic.Pointer[string]
	mu       sync.Mutex
	lat      [3][]time.Duration // request latencies by phase
}

func startReloadRig(tb testing.TB, n, ids int) *reloadRig {
	tb.Helper()
	dir := tb.TempDir()
	r := &reloadRig{path: filepath.Join(dir, "api_keys.txt"), stop: make(chan struct{})}
	for i, gen := range []string{"a", "b"} {
		r.gens[i] = filepath.Join(dir, "keys-"+gen+".txt")
		writeLoadKeys(tb, r.gens[i], gen, n, ids)
	}
	if err := os.Symlink(r.gens[0], r.path); err != nil {
		tb.Fatal(err)
	}

	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"object":"list","data":[]}`)
	}, CloseOnShutdown: true}
	go up.Serve(upLn)
	tb.Cleanup(func() { up.Shutdown() })

	gw, err := server.New(server.Config{
		KeysFile:  r.path,
		Upstreams: []string{"http://" + upLn.Addr().String()},
		AccessLog: filepath.Join(dir, "access.log"),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := server.Listen("127.0.0.1:0", nil)
	if err != nil {
		gw.Close()
		tb.Fatal(err)
	}
	go gw.Serve(ln)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
	})
	r.gw = gw

	hc := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: loadClients, ReadTimeout: 10 * time.Second}
	ready := make(chan struct{}, loadClients)
	for i := 0; i < loadClients; i++ {
		r.wg.Add(1)
		go r.client(hc, loadClientKey(i), ready)
	}
	for i := 0; i < loadClients; i++ {
		<-ready
	}
	return r
}

// client sends requests with key until stop, counting failures and
// recording latencies by phase. It signals ready after its first answer.
func (r *reloadRig) client(hc *fasthttp.HostClient, key string, ready chan<- struct{}) {
	defer r.wg.Done()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + hc.Addr + "/v1/models")
	req.Header.Set("Authorization", "Bearer "+key)
	var lat [3][]time.Duration
	for first := true; ; first = false {
		select {
		case <-r.stop:
			r.mu.Lock()
			for p := range lat {
				r.lat[p] = append(r.lat[p], lat[p]...)
			}
			r.mu.Unlock()
			return
		default:
		}
		phase := r.phase.Load()
		start := time.Now()
		err := hc.Do(req, resp)
		d := time.Since(start)
		if err == nil && resp.StatusCode() != fasthttp.StatusOK {
			err = fmt.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
		}
		if err != nil {
			r.failed.Add(1)
			msg := err.Error()
			r.firstErr.CompareAndSwap(nil, &msg)
		}
		if p := r.phase.Load(); p == phase { // requests that straddle a phase change count in neither
			lat[p] = append(lat[p], d)
		}
		if first {
			ready <- struct{}{}
		}
	}
}

// reload points the keys file at the other generation and reloads it,
// returning how long Reload took.
func (r *reloadRig) reload(tb testing.TB) time.Duration {
	tb.Helper()
	r.cur ^= 1
	tmp := r.path + ".tmp"
	if err := os.Symlink(r.gens[r.cur], tmp); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, r.path); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	if err := r.gw.Reload(); err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

// finish stops the clients and returns the latencies by phase, sorted.
func (r *reloadRig) finish() [3][]time.Duration {
	close(r.stop)
	r.wg.Wait()
	for p := range r.lat {
		slices.Sort(r.lat[p])
	}
	return r.lat
}

// quantile returns the q-quantile of sorted, 0 if empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}

// TestReloadUnderLoad: reloads of a 50,000-key file swap the key set while
// 16 clients send requests: none of them fails, and requests are answered
// during the reloads, not held until they end.
func TestReloadUnderLoad(t *testing.T) {
	r := startReloadRig(t, 50_000, 1000)
	r.phase.Store(1)
	for i := 0; i < 4; i++ {
		r.reload(t)
	}
	r.phase.Store(2)
	lat := r.finish()
	if n := r.failed.Load(); n > 0 {
		t.Errorf("%d requests failed during reloads; first: %s", n, *r.firstErr.Load())
	}
	if len(lat[1]) == 0 {
		t.Error("no request was answered during the reloads")
	}
	t.Logf("%d requests during 4 reloads of 50,000 keys, p99 %v", len(lat[1]), quantile(lat[1], 0.99))
}
