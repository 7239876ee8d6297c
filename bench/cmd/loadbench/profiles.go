package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/authgate/authgate/bench/internal/keyset"
	"github.com/authgate/authgate/bench/internal/wrk"
)

// profiles takes a CPU profile of the ceiling and of the gateway under the
// reject and proxy loads (log on and off, and routed by model) through their /debug/pprof/, and
// writes each with `go tool pprof -top` beside it in OUT/profiles/.
func (b *bench) profiles(ctx context.Context) error {
	o := b.o
	dir := filepath.Join(o.out, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	secs := max(2, int(o.duration/time.Second)-2)
	for _, p := range []struct {
		name, target, key string
	}{
		{"ceiling", "ceiling", keyset.Unknown},
		{"reject-authgate", "authgate", keyset.Unknown},
		{"reject-authgate-nolog", "authgate-nolog", keyset.Unknown},
		{"proxy-authgate", "authgate", keyset.Valid},
		{"proxy-authgate-nolog", "authgate-nolog", keyset.Valid},
		{"proxy-authgate-routed", "authgate-routed", keyset.Valid},
	} {
		t := b.targets[p.target]
		w := wrk.Config{Wrk: o.wrk, Script: filepath.Join(b.dir, "wrk.lua"), CPUs: o.loadCPU, Conns: o.conns,
			URL: "http://" + t.addr + chatPath, Key: p.key, Duration: time.Duration(secs+2) * time.Second}
		errc := make(chan error, 1)
		go func() { _, _, err := wrk.Run(ctx, w); errc <- err }()
		time.Sleep(time.Second)
		path := filepath.Join(dir, p.name+".pprof")
		curl := exec.CommandContext(ctx, "curl", "-sf", "-o", path,
			fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", t.admin, secs))
		if out, err := curl.CombinedOutput(); err != nil {
			<-errc
			return fmt.Errorf("profile of %s: %v: %s", p.name, err, out)
		}
		if err := <-errc; err != nil {
			return err
		}
		bin := map[string]string{"ceiling": o.ceiling, "authgate": o.bin, "authgate-nolog": o.nolog, "authgate-routed": o.bin}[p.target]
		top, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=30", bin, path).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go tool pprof %s: %v: %s", path, err, top)
		}
		if err := os.WriteFile(strings.TrimSuffix(path, ".pprof")+".top.txt", top, 0o644); err != nil {
			return err
		}
		b.logf("profile %s written", path)
	}
	return nil
}

// memProfile writes, with -profile, for a target with an admin listener
// (authgate), where its memory is at this moment: the runtime's figures
// and goroutine count, then the live heap by allocation site, into
// OUT/profiles/NAME-heap.txt. Targets without one are skipped.
func (b *bench) memProfile(ctx context.Context, t *target, name string) error {
	if !b.o.profile || t.admin == "" {
		return nil
	}
	dir := filepath.Join(b.o.out, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base := "http://" + t.admin + "/debug/pprof/"
	stats, err := exec.CommandContext(ctx, "curl", "-sf", base+"heap?debug=1").Output()
	if err != nil {
		return fmt.Errorf("heap of %s: %v", name, err)
	}
	gr, err := exec.CommandContext(ctx, "curl", "-sf", base+"goroutine?debug=1").Output()
	if err != nil {
		return fmt.Errorf("goroutines of %s: %v", name, err)
	}
	path := filepath.Join(dir, name+"-heap.pprof")
	if out, err := exec.CommandContext(ctx, "curl", "-sf", "-o", path, base+"heap").CombinedOutput(); err != nil {
		return fmt.Errorf("heap profile of %s: %v: %s", name, err, out)
	}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", "-sample_index=inuse_space", b.o.bin, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof %s: %v: %s", path, err, top)
	}
	var out strings.Builder
	// The goroutine profile's first line counts them; the heap page ends
	// with the runtime's MemStats, each line starting "# ".
	first, _, _ := strings.Cut(string(gr), "\n")
	out.WriteString(first + "\n\n")
	for _, l := range strings.Split(string(stats), "\n") {
		if strings.HasPrefix(l, "# ") {
			out.WriteString(l + "\n")
		}
	}
	out.WriteString("\n")
	out.Write(top)
	if err := os.WriteFile(filepath.Join(dir, name+"-heap.txt"), []byte(out.String()), 0o644); err != nil {
		return err
	}
	b.logf("memory profile %s written", filepath.Join(dir, name+"-heap.txt"))
	return nil
}

// cpuProfile writes, with -profile, for a target with an admin listener,
// a CPU profile of the next secs seconds and its top functions into
// OUT/profiles/NAME-cpu.{pprof,top.txt}. Targets without one are skipped.
func (b *bench) cpuProfile(ctx context.Context, t *target, name string, secs int) error {
	if !b.o.profile || t.admin == "" {
		return nil
	}
	path := filepath.Join(b.o.out, "profiles", name+"-cpu.pprof")
	curl := exec.CommandContext(ctx, "curl", "-sf", "-o", path,
		fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", t.admin, secs))
	if out, err := curl.CombinedOutput(); err != nil {
		return fmt.Errorf("CPU profile of %s: %v: %s", name, err, out)
	}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=40", b.o.bin, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof %s: %v: %s", path, err, top)
	}
	return os.WriteFile(strings.TrimSuffix(path, ".pprof")+".top.txt", top, 0o644)
}
