package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestServeBinaryZeroDowntimeSwap is the upgrade procedure of docs/operations.md#upgrading
// under load: a second authgate binds the same port (SO_REUSEPORT), the
// first gets SIGTERM, drains and exits, and no client request fails. Every
// request is in the (shared) access log once.
func TestServeBinaryZeroDowntimeSwap(t *testing.T) {
	up := startUpstream(t)
	key := testKey(t)
	keys := "swap:" + key + " rpm=10000000\n"
	environ, dataDir := gatewayEnv(t, up, &keys, map[string]string{"SHUTDOWN_DRAIN": "1s"})
	old := startServe(t, environ)
	addr := strings.TrimPrefix(old.base, "http://")

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true},
	}
	defer client.CloseIdleConnections()
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, err := http.NewRequest("POST", old.base+"/v1/chat/completions", strings.NewReader(`{"messages":[]}`))
				if err != nil {
					panic(err)
				}
				req.Header.Set("Authorization", "Bearer "+key)
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = &statusError{resp.StatusCode}
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	waitRequests := func(n int64) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d requests of the load answered", n), func() bool { return ok.Load()+failed.Load() >= n })
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	waitRequests(200)
	successor := startProc(t, []string{"serve"}, withEnv(environ, map[string]string{"LISTEN_ADDR": addr}))
	if !successor.stderr.waitFor("authgate serving", 1, waitLimit) {
		t.Fatalf("the successor did not start:\n%s", successor.stderr)
	}
	n := ok.Load() + failed.Load()
	waitRequests(n + 200)

	old.signal(syscall.SIGTERM)
	if code := old.wait(15 * time.Second); code != 0 {
		t.Fatalf("the old process exited %d", code)
	}
	n = ok.Load() + failed.Load()
	waitRequests(n + 200) // the successor alone
	close(stop)
	wg.Wait()
	client.CloseIdleConnections()
	successor.stop(syscall.SIGTERM, 15*time.Second)

	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d requests failed across the swap; first: %v", f, f+ok.Load(), firstErr.Load())
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "logs", "api_access.log"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := int64(strings.Count(string(b), " | swap | POST /v1/chat/completions | 200\n")); lines != ok.Load() {
		t.Errorf("access log has %d lines for %d requests", lines, ok.Load())
	}
	t.Logf("%d requests across the swap, none failed", ok.Load())
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "status " + http.StatusText(e.code) }
