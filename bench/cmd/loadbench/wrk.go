package main

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

//go:embed wrk.lua
var wrkScript []byte

// wrkResult is what wrk.lua's done() prints.
type wrkResult struct {
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

// parseWrk finds done()'s JSON line in wrk's output.
func parseWrk(out []byte) (wrkResult, error) {
	var r wrkResult
	for _, line := range bytes.Split(out, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if bytes.HasPrefix(line, []byte(`{"requests":`)) {
			err := json.Unmarshal(line, &r)
			return r, err
		}
	}
	return r, fmt.Errorf("no result line in wrk's output: %q", out)
}

// wrkRun is one wrk invocation: one thread (it has one core), conns
// connections, for d (whole seconds, at least 1), against url with key.
type wrkRun struct {
	wrk, script, cpus string
	conns             int
	d                 time.Duration
	url, key          string
}

// run runs wrk and returns its result and the CPU time it used.
func (w wrkRun) run(ctx context.Context) (wrkResult, time.Duration, error) {
	secs := max(1, int(w.d.Round(time.Second)/time.Second))
	argv := []string{w.wrk, "-t1", "-c" + strconv.Itoa(w.conns), "-d" + strconv.Itoa(secs) + "s",
		"--timeout", "10s", "-s", w.script, w.url}
	if w.cpus != "" {
		argv = append([]string{"taskset", "-c", w.cpus}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(cmd.Environ(), "BENCH_KEY="+w.key)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return wrkResult{}, cpu, fmt.Errorf("wrk: %v: %s", err, out.Bytes())
	}
	r, err := parseWrk(out.Bytes())
	return r, cpu, err
}
