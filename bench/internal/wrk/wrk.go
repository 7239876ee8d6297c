// Package wrk runs the wrk load generator for the benchmark's closed-loop
// scenarios, with wrk.lua, which sets the request and prints wrk's figures
// as one JSON line, and reads that line back.
package wrk

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// Script is wrk.lua, the script every run needs: write it to a file and
// name the file in Config.Script.
//
//go:embed wrk.lua
var Script []byte

// Result is what wrk.lua's done() prints.
type Result struct {
	Requests      int64 `json:"requests"`
	DurationUS    int64 `json:"duration_us"`
	Bytes         int64 `json:"bytes"`
	ConnectErrors int64 `json:"connect_errors"`
	ReadErrors    int64 `json:"read_errors"`
	WriteErrors   int64 `json:"write_errors"`
	StatusErrors  int64 `json:"status_errors"` // responses not 2xx or 3xx
	Timeouts      int64 `json:"timeouts"`
	P50           int64 `json:"p50_us"`
	P90           int64 `json:"p90_us"`
	P99           int64 `json:"p99_us"`
	Max           int64 `json:"max_us"`
}

// Parse finds done()'s JSON line in wrk's output.
func Parse(out []byte) (Result, error) {
	var r Result
	for _, line := range bytes.Split(out, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if bytes.HasPrefix(line, []byte(`{"requests":`)) {
			err := json.Unmarshal(line, &r)
			return r, err
		}
	}
	return r, fmt.Errorf("no result line in wrk's output: %q", out)
}

// Config is one wrk invocation: one thread (it has one core), Conns
// connections, for Duration (whole seconds, at least 1), against URL with
// Key.
type Config struct {
	Wrk      string // the wrk command
	Script   string // the path of a copy of Script
	CPUs     string // taskset CPU list wrk is pinned to; "": not pinned
	Conns    int
	Duration time.Duration
	URL      string
	Key      string // sent as a bearer token; "": none
}

// Run runs wrk and returns its result and the CPU time it used. It ends
// wrk if ctx is cancelled, and the kernel ends it if this process dies.
func Run(ctx context.Context, w Config) (Result, time.Duration, error) {
	secs := max(1, int(w.Duration.Round(time.Second)/time.Second))
	argv := []string{w.Wrk, "-t1", "-c" + strconv.Itoa(w.Conns), "-d" + strconv.Itoa(secs) + "s",
		"--timeout", "10s", "-s", w.Script, w.URL}
	if w.CPUs != "" {
		argv = append([]string{"taskset", "-c", w.CPUs}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(cmd.Environ(), "BENCH_KEY="+w.Key)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return Result{}, cpu, fmt.Errorf("wrk: %v: %s", err, out.Bytes())
	}
	r, err := Parse(out.Bytes())
	return r, cpu, err
}
