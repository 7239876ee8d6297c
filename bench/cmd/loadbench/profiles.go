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
