// Package proc starts and stops the processes the benchmark runs (the
// servers under test, their upstream, the peers), pinned to CPUs with
// taskset, and samples the CPU time they use from /proc.
package proc

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a process the benchmark started. Stop ends it; the caller
// stops every Process before it exits, however it exits, and the kernel
// kills it if the caller dies without doing so.
type Process struct {
	Name string
	cmd  *exec.Cmd
	log  string // its stdout and stderr, unless redirected
	done chan struct{}
}

// Start starts argv pinned to cpus (a taskset list such as "0"; empty:
// not pinned), with env added to the benchmark's own environment. Its
// output goes to dir/name.log, or stdout to the given file if not nil;
// stdin, if not nil, is its standard input.
func Start(dir, name, cpus string, env []string, stdin, stdout *os.File, argv ...string) (*Process, error) {
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if stdin != nil {
		cmd.Stdin = stdin
	}
	// If the benchmark dies without its cleanup (SIGKILL), the kernel
	// kills its children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s (%s): %w", name, strings.Join(argv, " "), err)
	}
	p := &Process{Name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process's id (taskset execs the command, so it is the
// command's own).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to 10 s, then SIGKILL. It is idempotent.
func (p *Process) Stop() {
	if p == nil || p.Exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Tail returns the last lines of the process's log, for error messages.
func (p *Process) Tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// WaitListening waits until addr accepts connections, p exits, or timeout
// passes; it returns an error in the last two cases.
func WaitListening(p *Process, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s exited at start: %s", p.Name, p.Tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not listen on %s after %v: %s", p.Name, addr, timeout, p.Tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FreeAddr returns a loopback address with a port free at the time.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// clockTick is the unit of utime and stime in /proc/PID/stat
// (sysconf(_SC_CLK_TCK), 100 on Linux).
const clockTick = 10 * time.Millisecond

// CPU returns the CPU time (user and system, all threads) used so far by
// pid and its child processes (nginx's workers); 0 for a pid that is gone.
func CPU(pid int) time.Duration {
	total := statCPU(pid)
	for _, c := range children(pid) {
		total += statCPU(c)
	}
	return total
}

func statCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := statFields(b)
	if len(f) < 15 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[13], 10, 64)
	stime, _ := strconv.ParseInt(f[14], 10, 64)
	return time.Duration(utime+stime) * clockTick
}

// statFields splits /proc/PID/stat, whose second field (the command, in
// parentheses) may hold spaces.
func statFields(b []byte) []string {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	open := bytes.IndexByte(b, '(')
	return append([]string{string(b[:max(open-1, 0)]), string(b[open+1 : i])}, strings.Fields(string(b[i+1:]))...)
}

// children returns the ids of pid's child processes.
func children(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// RSS returns the resident memory (VmRSS of /proc/PID/status, in bytes)
// of pid and its child processes (nginx's workers); 0 for a pid that is
// gone.
func RSS(pid int) int64 {
	total := statusRSS(pid)
	for _, c := range children(pid) {
		total += statusRSS(c)
	}
	return total
}

func statusRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	return parseVmRSS(b)
}

// parseVmRSS returns the VmRSS line's value of a /proc/PID/status, in
// bytes; 0 if there is none (a zombie).
func parseVmRSS(status []byte) int64 {
	_, rest, ok := bytes.Cut(status, []byte("\nVmRSS:"))
	if !ok {
		return 0
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	f := strings.Fields(string(line)) // "1234", "kB"
	if len(f) != 2 || f[1] != "kB" {
		return 0
	}
	kb, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0
	}
	return kb << 10
}

// RaiseFDLimit raises this process's soft limit of open files to its hard
// limit, so that the processes it starts inherit it too (Go raises its own
// soft limit at start, but restores the original one in the processes it
// starts unless the program sets the limit itself), and returns the limit.
func RaiseFDLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("cannot read the open-files limit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("cannot raise the open-files limit to %d: %w", lim.Max, err)
	}
	return lim.Cur, nil
}
