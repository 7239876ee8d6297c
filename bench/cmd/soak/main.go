// Command soak runs the authgate binary under mixed traffic for a set time
// and checks that it holds (bench/README.md#soak):
//
//   - traffic: valid chat completions, unknown keys (401), a key over its
//     limit (429), streamed completions read to the end, clients that
//     disconnect mid-stream (499) and malformed requests (400), from
//     -workers goroutines on loopback;
//   - RSS, goroutines and open file descriptors of the gateway are sampled
//     every -sample; after -warmup they must stay flat (the last samples
//     within 10% or 5 MiB / 20 goroutines / 10 fds of the first ones), and
//     once the load stops goroutines and fds return to their level before
//     it;
//   - after a SIGTERM (which must exit 0), the access log holds exactly one
//     line per request sent, and no request got a 5xx (none is injected).
//
// It starts `authgate mock-upstream` and `authgate serve` itself, on free
// loopback ports, and stops both. Usage (bench/soak.sh builds the binary):
//
//	go run ./bench/cmd/soak -bin bin/authgate -duration 10m
//
// It prints a markdown report, also written to -out if set, and exits 1 if
// a check fails.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/authgate", "the authgate binary")
	duration := flag.Duration("duration", 10*time.Minute, "how long to send traffic")
	warmup := flag.Duration("warmup", 0, "time before the flatness baseline (0: a fifth of -duration, at most 2m)")
	sample := flag.Duration("sample", 5*time.Second, "time between two samples of RSS, goroutines and fds")
	workers := flag.Int("workers", 16, "concurrent clients")
	out := flag.String("out", "", "also write the report to this file")
	debugDir := flag.String("debug-dir", "", "save the gateway's goroutine dump and heap profile, idle after the load, in this directory")
	flag.Parse()
	if *warmup == 0 {
		*warmup = min(*duration/5, 2*time.Minute)
	}
	s := &soak{bin: *bin, duration: *duration, warmup: *warmup, sample: *sample, workers: *workers, debugDir: *debugDir}
	report, ok, err := s.run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	fmt.Print(report)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
			os.Exit(1)
		}
	}
	if !ok {
		os.Exit(1)
	}
}

type soak struct {
	bin                      string
	duration, warmup, sample time.Duration
	workers                  int
	debugDir                 string

	dir                    string
	gateway, admin         string // host:port
	keyValid, keyLimited   string
	gw                     *exec.Cmd
	gwExited               chan struct{}
	sent                   [numKinds]atomic.Int64 // requests that reached the gateway, by kind
	statuses               sync.Map               // status (int) → *atomic.Int64, as clients saw them
	clientErrors           atomic.Int64           // requests that failed client-side (counted as sent)
	samples                []sampleRow
	baseGoroutines, baseFD int
}

type kind int

const (
	kindValid kind = iota
	kindUnknownKey
	kindLimited
	kindStream
	kindDisconnect
	kindMalformed
	numKinds
)

var kindNames = [numKinds]string{"valid", "unknown key", "over limit", "stream", "disconnect", "malformed"}

// weights of each kind in the mix, in percent.
var weights = [numKinds]int{40, 20, 15, 15, 5, 5}

type sampleRow struct {
	at         time.Duration
	rss        int64 // bytes
	goroutines int
	fds        int
	sent       int64
}

func (s *soak) run() (string, bool, error) {
	dir, err := os.MkdirTemp("", "authgate-soak-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(dir)
	s.dir = dir
	s.keyValid, s.keyLimited = newKey(), newKey()
	keys := "soak:" + s.keyValid + " rpm=10000000\nlimited:" + s.keyLimited + " rpm=60\n"
	if err := os.WriteFile(filepath.Join(dir, "api_keys.txt"), []byte(keys), 0o600); err != nil {
		return "", false, err
	}

	upstream := freeAddr()
	mock := exec.Command(s.bin, "mock-upstream", "--listen", upstream, "--chunk-delay", "5ms", "--stream-chunks", "8")
	mock.Stderr = os.Stderr
	if err := mock.Start(); err != nil {
		return "", false, fmt.Errorf("start mock upstream: %w", err)
	}
	defer func() { mock.Process.Signal(syscall.SIGTERM); mock.Wait() }()

	s.gateway, s.admin = freeAddr(), freeAddr()
	var gwErr bytes.Buffer
	s.gw = exec.Command(s.bin, "serve")
	s.gw.Env = append(os.Environ(),
		"DATA_DIR="+dir,
		"UPSTREAM_URL=http://"+upstream,
		"LISTEN_ADDR="+s.gateway,
		"ADMIN_ADDR="+s.admin,
		"SHUTDOWN_DRAIN=0s",
	)
	s.gw.Stderr = &lockedWriter{w: &gwErr}
	if err := s.gw.Start(); err != nil {
		return "", false, fmt.Errorf("start gateway: %w", err)
	}
	s.gwExited = make(chan struct{})
	go func() { s.gw.Wait(); close(s.gwExited) }()
	defer func() {
		select {
		case <-s.gwExited:
		default:
			s.gw.Process.Kill()
			<-s.gwExited
		}
	}()
	if err := s.waitReady(); err != nil {
		return "", false, fmt.Errorf("%w\ngateway stderr:\n%s", err, gwErr.String())
	}
	idle, err := s.takeSample(0)
	if err != nil {
		return "", false, err
	}
	s.baseGoroutines, s.baseFD = idle.goroutines, idle.fds

	// Load, with a sampler alongside.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), s.duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < s.workers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); s.worker(ctx) }()
	}
	sampleErr := make(chan error, 1)
	go func() {
		t := time.NewTicker(s.sample)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				sampleErr <- nil
				return
			case <-t.C:
				row, err := s.takeSample(time.Since(start))
				if err != nil {
					sampleErr <- err
					return
				}
				s.samples = append(s.samples, row)
			}
		}
	}()
	wg.Wait()
	if err := <-sampleErr; err != nil {
		return "", false, err
	}
	// Idle again: streams and disconnect watches end, keep-alive clients
	// are closed. fasthttp keeps an idle worker goroutine for 10 s, checked
	// every 10 s (so up to 20 s); the upstream pool an idle connection 4 s.
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(25 * time.Second)
	after, err := s.takeSample(time.Since(start))
	if err != nil {
		return "", false, err
	}

	if s.debugDir != "" {
		for name, path := range map[string]string{"goroutines.txt": "/debug/pprof/goroutine?debug=1", "heap.pprof": "/debug/pprof/heap?gc=1"} {
			if err := s.saveAdmin(path, filepath.Join(s.debugDir, name)); err != nil {
				return "", false, err
			}
		}
	}
	s.gw.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.gwExited:
	case <-time.After(60 * time.Second):
		return "", false, errors.New("gateway did not exit within 60 s of SIGTERM")
	}
	exitCode := s.gw.ProcessState.ExitCode()
	lines, logStatuses, err := readLog(filepath.Join(dir, "logs", "api_access.log"))
	if err != nil {
		return "", false, err
	}
	return s.report(idle, after, exitCode, lines, logStatuses, gwErr.String())
}

// worker sends requests of random kinds until ctx is done.
func (s *soak) worker(ctx context.Context) {
	tr := &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	for ctx.Err() == nil {
		n := mrand.IntN(100)
		k := kind(0)
		for ; n >= weights[k]; k++ {
			n -= weights[k]
		}
		status, err := s.send(hc, k)
		s.sent[k].Add(1)
		if err != nil {
			s.clientErrors.Add(1)
			continue
		}
		c, _ := s.statuses.LoadOrStore(status, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
	}
}

const (
	chatBody   = `{"model":"mock-model","messages":[{"role":"user","content":"Hello"}]}`
	streamBody = `{"model":"mock-model","stream":true,"messages":[{"role":"user","content":"Hello"}]}`
)

// send sends one request of kind k and returns the status the client saw
// (499 for a client that left on purpose).
func (s *soak) send(hc *http.Client, k kind) (int, error) {
	switch k {
	case kindDisconnect:
		return s.disconnect()
	case kindMalformed:
		return s.malformed()
	}
	key, body := s.keyValid, chatBody
	switch k {
	case kindUnknownKey:
		key = "sk-unknown-" + hex.EncodeToString(randBytes(12))
	case kindLimited:
		key = s.keyLimited
	case kindStream:
		body = streamBody
	}
	req, _ := http.NewRequest("POST", "http://"+s.gateway+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if k == kindStream && resp.StatusCode == 200 && !bytes.Contains(b, []byte("data: [DONE]")) {
		return 0, fmt.Errorf("stream without [DONE]: %q", b)
	}
	return resp.StatusCode, nil
}

// disconnect starts a streamed completion on its own connection and
// closes it after the first bytes of the response.
func (s *soak) disconnect() (int, error) {
	c, err := net.DialTimeout("tcp", s.gateway, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: soak\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		s.keyValid, len(streamBody), streamBody)
	var buf [64]byte
	if _, err := c.Read(buf[:]); err != nil {
		return 0, err
	}
	if c, ok := c.(*net.TCPConn); ok {
		c.SetLinger(0) // a reset, as a client killed mid-stream sends
	}
	return 499, nil
}

// malformed sends a request with a header line without a colon.
func (s *soak) malformed() (int, error) {
	c, err := net.DialTimeout("tcp", s.gateway, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /v1/models HTTP/1.1\r\nHost: soak\r\nThis is not a header\r\n\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, fmt.Errorf("status line %q", line)
	}
	return strconv.Atoi(f[1])
}

func (s *soak) waitReady() error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.gateway + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-s.gwExited:
			return errors.New("gateway exited at start")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("gateway not ready within 20 s")
}

// saveAdmin saves the admin listener's answer for path to file.
func (s *soak) saveAdmin(path, file string) error {
	resp, err := http.Get("http://" + s.admin + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// takeSample reads the gateway's RSS and fds from /proc and its goroutine
// count from the admin listener's pprof.
func (s *soak) takeSample(at time.Duration) (sampleRow, error) {
	row := sampleRow{at: at}
	for k := range s.sent {
		row.sent += s.sent[k].Load()
	}
	pid := s.gw.Process.Pid
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return row, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			row.rss = kb << 10
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return row, err
	}
	row.fds = len(fds)
	resp, err := http.Get("http://" + s.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return row, err
	}
	defer resp.Body.Close()
	first, _ := bufio.NewReader(resp.Body).ReadString('\n')
	// "goroutine profile: total 42"
	f := strings.Fields(first)
	if len(f) == 0 {
		return row, fmt.Errorf("goroutine profile: %q", first)
	}
	row.goroutines, err = strconv.Atoi(f[len(f)-1])
	return row, err
}

// readLog counts the access log's lines and their statuses (the last
// field of a text line).
func readLog(path string) (int64, map[int]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	statuses := map[int]int64{}
	var n int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		i := strings.LastIndex(line, " | ")
		if i < 0 {
			return 0, nil, fmt.Errorf("access log line %d malformed: %q", n, line)
		}
		code, err := strconv.Atoi(line[i+3:])
		if err != nil {
			return 0, nil, fmt.Errorf("access log line %d malformed: %q", n, line)
		}
		statuses[code]++
	}
	return n, statuses, sc.Err()
}

// flat reports whether the values after warm-up stay within tol (absolute)
// or frac (relative) of their first ones, comparing the medians of the
// first and last three samples.
func flat(vals []float64, tol, frac float64) (first, last float64, ok bool) {
	if len(vals) < 6 {
		return 0, 0, false
	}
	med := func(v []float64) float64 {
		c := slices.Clone(v)
		slices.Sort(c)
		return c[len(c)/2]
	}
	first, last = med(vals[:3]), med(vals[len(vals)-3:])
	return first, last, last-first <= max(tol, first*frac)
}

func (s *soak) report(idle, after sampleRow, exitCode int, lines int64, logStatuses map[int]int64, gwStderr string) (string, bool, error) {
	var b strings.Builder
	ok := true
	check := func(pass bool, format string, args ...any) {
		mark := "PASS"
		if !pass {
			mark, ok = "FAIL", false
		}
		fmt.Fprintf(&b, "- %s: %s\n", mark, fmt.Sprintf(format, args...))
	}
	var sent int64
	for k := range s.sent {
		sent += s.sent[k].Load()
	}
	fmt.Fprintf(&b, "# authgate soak\n\n%v of traffic from %d clients (warm-up %v, a sample every %v), %d requests, %.0f/s; %s.\n\n",
		s.duration, s.workers, s.warmup, s.sample, sent, float64(sent)/s.duration.Seconds(), time.Now().UTC().Format(time.RFC3339))
	b.WriteString("| kind | sent |\n| --- | --- |\n")
	for k := kind(0); k < numKinds; k++ {
		fmt.Fprintf(&b, "| %s | %d |\n", kindNames[k], s.sent[k].Load())
	}
	b.WriteString("\n| status | clients saw | access log |\n| --- | --- | --- |\n")
	codes := map[int]bool{}
	s.statuses.Range(func(k, _ any) bool { codes[k.(int)] = true; return true })
	for c := range logStatuses {
		codes[c] = true
	}
	sorted := make([]int, 0, len(codes))
	for c := range codes {
		sorted = append(sorted, c)
	}
	slices.Sort(sorted)
	var client5xx, log5xx int64
	for _, c := range sorted {
		var seen int64
		if v, ok := s.statuses.Load(c); ok {
			seen = v.(*atomic.Int64).Load()
		}
		if c >= 500 {
			client5xx += seen
			log5xx += logStatuses[c]
		}
		fmt.Fprintf(&b, "| %d | %d | %d |\n", c, seen, logStatuses[c])
	}
	fmt.Fprintf(&b, "\nClient-side errors (counted as sent): %d.\n\n", s.clientErrors.Load())

	b.WriteString("| time | RSS MiB | goroutines | fds | requests sent |\n| --- | --- | --- | --- | --- |\n")
	fmt.Fprintf(&b, "| before load | %.1f | %d | %d | 0 |\n", float64(idle.rss)/(1<<20), idle.goroutines, idle.fds)
	var rss, gor, fds []float64
	for _, r := range s.samples {
		if r.at >= s.warmup {
			rss = append(rss, float64(r.rss))
			gor = append(gor, float64(r.goroutines))
			fds = append(fds, float64(r.fds))
		}
	}
	step := max(len(s.samples)/20, 1) // at most about 20 rows
	for i, r := range s.samples {
		if i%step == 0 || i == len(s.samples)-1 {
			fmt.Fprintf(&b, "| %v | %.1f | %d | %d | %d |\n", r.at.Round(time.Second), float64(r.rss)/(1<<20), r.goroutines, r.fds, r.sent)
		}
	}
	fmt.Fprintf(&b, "| after load, idle | %.1f | %d | %d | %d |\n\n", float64(after.rss)/(1<<20), after.goroutines, after.fds, sent)

	f, l, pass := flat(rss, 5<<20, 0.10)
	check(pass, "RSS flat after warm-up: %.1f → %.1f MiB (within 10%% or 5 MiB)", f/(1<<20), l/(1<<20))
	f, l, pass = flat(gor, 20, 0.10)
	check(pass, "goroutines flat after warm-up under load: %.0f → %.0f (within 10%% or 20)", f, l)
	f, l, pass = flat(fds, 10, 0.10)
	check(pass, "fds flat after warm-up under load: %.0f → %.0f (within 10%% or 10)", f, l)
	check(after.goroutines <= s.baseGoroutines+10, "goroutines back after the load: %d before, %d after", s.baseGoroutines, after.goroutines)
	check(after.fds <= s.baseFD+10, "fds back after the load: %d before, %d after", s.baseFD, after.fds)
	check(exitCode == 0, "SIGTERM: exit code %d", exitCode)
	check(lines == sent, "access log lines = requests sent: %d lines, %d sent", lines, sent)
	check(client5xx == 0 && log5xx == 0, "no 5xx (none injected): %d seen by clients, %d in the log", client5xx, log5xx)
	check(s.clientErrors.Load() == 0, "no client-side error: %d", s.clientErrors.Load())
	for _, k := range []string{s.keyValid, s.keyLimited} {
		check(!strings.Contains(gwStderr, k), "no key in the gateway's log output")
	}
	return b.String(), ok, nil
}

func newKey() string { return "sk-soak-" + hex.EncodeToString(randBytes(16)) }

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
