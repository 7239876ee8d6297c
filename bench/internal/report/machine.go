package report

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// readString returns the file at path's content, "" if it cannot be read.
func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func cpuModel() string {
	for _, line := range strings.Split(readString("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// cpuCores counts the machine's processors (runtime.NumCPU counts those
// this process may run on, one when pinned).
func cpuCores() int {
	n := strings.Count(readString("/proc/cpuinfo"), "\nprocessor")
	if strings.HasPrefix(readString("/proc/cpuinfo"), "processor") {
		n++
	}
	return max(n, runtime.NumCPU())
}

func memGiB() float64 {
	for _, line := range strings.Split(readString("/proc/meminfo"), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / (1 << 20)
		}
	}
	return 0
}

func loadAvg() [3]float64 {
	var l [3]float64
	f := strings.Fields(readString("/proc/loadavg"))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

// version returns the first line a program prints with flag (nginx
// prints its version on stderr).
func version(prog, flag string) string {
	out, _ := exec.Command(prog, flag).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	for _, prefix := range []string{"nginx version: ", "HAProxy version "} {
		line = strings.TrimPrefix(line, prefix)
	}
	if f := strings.Fields(line); len(f) > 0 && prog != "wrk" {
		return f[0]
	}
	if f := strings.Fields(line); len(f) > 1 {
		return f[1]
	}
	return line
}
