package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/authgate/authgate/bench/internal/keyset"
	"github.com/authgate/authgate/bench/internal/peers"
	"github.com/authgate/authgate/bench/internal/proc"
)

// startServers starts every server and waits until each listens.
func (b *bench) startServers() error {
	o := b.o
	keys := keyset.Keys()
	keysFile := filepath.Join(b.dir, "api_keys.txt")
	if err := keyset.WriteAuthgate(keysFile, keys); err != nil {
		return err
	}
	b.targets = map[string]*target{}
	launch := func(name, cpus string, env []string, argv func(addr string) []string) (*target, error) {
		a := mustFreeAddr()
		p, err := b.start(name, cpus, env, nil, nil, argv(a)...)
		if err != nil {
			return nil, err
		}
		if err := proc.WaitListening(p, a, 15*time.Second); err != nil {
			return nil, err
		}
		t := &target{name: name, addr: a, procs: []*proc.Process{p}}
		b.targets[name] = t
		return t, nil
	}

	// The upstream the proxies use, on the load's core; it also answers
	// the streaming client directly.
	up, err := launch("upstream", o.loadCPU, nil, func(a string) []string {
		return []string{o.bin, "mock-upstream", "--listen", a, "--chunk-delay", o.streamDelay.String(), "--reply-bytes", strconv.Itoa(o.replyBytes)}
	})
	if err != nil {
		return err
	}
	b.upstream = up
	// serveEnv is `authgate serve`'s environment, with extra settings.
	serveEnv := func(accessLog, admin string, extra ...string) []string {
		return append([]string{
			"DATA_DIR=" + b.dir,
			"AUTH_KEYS_FILE=" + keysFile,
			"UPSTREAM_URL=http://" + up.addr,
			"ACCESS_LOG=" + accessLog,
			"ADMIN_ADDR=" + admin,
			"SHUTDOWN_DRAIN=0s",
			"SHUTDOWN_GRACE=5s",
		}, extra...)
	}
	if o.ab != "" {
		// -ab: the gateway built two ways, each as `authgate` is below.
		for _, g := range []struct{ name, bin string }{{"authgate", o.bin}, {"authgate-b", o.ab}} {
			accessLog := filepath.Join(b.dir, g.name+"-access.log")
			t, err := launch(g.name, o.serverCPU, serveEnv(accessLog, ""),
				func(a string) []string { return []string{g.bin, "serve", "--listen", a} })
			if err != nil {
				return err
			}
			t.proxies, t.accessLog = true, accessLog
		}
		return nil
	}
	if _, err := launch("mock", o.serverCPU, nil, func(a string) []string {
		return []string{o.bin, "mock-upstream", "--listen", a, "--chunk-delay", o.streamDelay.String(), "--reply-bytes", strconv.Itoa(o.replyBytes)}
	}); err != nil {
		return err
	}
	adminAddr := func() string {
		if o.profile {
			return mustFreeAddr()
		}
		return ""
	}
	admin := adminAddr()
	ceiling, err := launch("ceiling", o.serverCPU, nil, func(a string) []string {
		return []string{o.ceiling, "-listen", a, "-pprof", admin}
	})
	if err != nil {
		return err
	}
	ceiling.admin = admin
	if _, err := launch("ceiling-gw", o.serverCPU, nil, func(a string) []string {
		return []string{o.ceiling, "-listen", a, "-gateway-settings"}
	}); err != nil {
		return err
	}

	accessLog := filepath.Join(b.dir, "authgate-access.log")
	admin = adminAddr()
	gw, err := launch("authgate", o.serverCPU, serveEnv(accessLog, admin),
		func(a string) []string { return []string{o.bin, "serve", "--listen", a} })
	if err != nil {
		return err
	}
	gw.proxies, gw.accessLog, gw.admin = true, accessLog, admin

	// authgate-routed: the same upstream, declared as serving the
	// benchmark's model, beside a second pool serving another: every
	// request's body is read for its model and routed.
	up2, err := launch("upstream-2", o.loadCPU, nil, func(a string) []string {
		return []string{o.bin, "mock-upstream", "--listen", a, "--models", "other-model", "--reply-bytes", strconv.Itoa(o.replyBytes)}
	})
	if err != nil {
		return err
	}
	routedLog := filepath.Join(b.dir, "authgate-routed-access.log")
	admin = adminAddr()
	rt, err := launch("authgate-routed", o.serverCPU,
		append(serveEnv(routedLog, admin), "UPSTREAM_URL=http://"+up.addr+" models="+benchModel+",http://"+up2.addr+" models=other-model"),
		func(a string) []string { return []string{o.bin, "serve", "--listen", a} })
	if err != nil {
		return err
	}
	rt.proxies, rt.accessLog, rt.admin = true, routedLog, admin

	// authgate-nometer: authgate with token metering off, for the
	// metering cost's pairs.
	nmLog := filepath.Join(b.dir, "authgate-nometer-access.log")
	admin = adminAddr()
	nm, err := launch("authgate-nometer", o.serverCPU, append(serveEnv(nmLog, admin), "TOKEN_METERING=false"),
		func(a string) []string { return []string{o.bin, "serve", "--listen", a} })
	if err != nil {
		return err
	}
	nm.proxies, nm.accessLog, nm.admin = true, nmLog, admin

	admin = adminAddr()
	argv := []string{o.nolog, "-upstream", "http://" + up.addr, "-keys", keysFile, "-admin-listen", admin}
	nl, err := launch("authgate-nolog", o.serverCPU, nil, func(a string) []string { return append(argv, "-listen", a) })
	if err != nil {
		return err
	}
	nl.proxies, nl.admin = true, admin

	if o.redis {
		// Redis on the load's core, as it would be on another machine
		// than the gateway's; failure mode closed, so that a decision
		// Redis did not make shows as a 503 (a wrong status), never as a
		// request the in-process fallback admitted.
		redis, err := launch("redis", o.loadCPU, nil, func(a string) []string {
			_, port, _ := net.SplitHostPort(a)
			return []string{"redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
				"--protected-mode", "no", "--dir", b.dir, "--logfile", filepath.Join(b.dir, "redis.log")}
		})
		if err != nil {
			return err
		}
		redisLog := filepath.Join(b.dir, "authgate-redis-access.log")
		admin = adminAddr()
		gr, err := launch("authgate-redis", o.serverCPU,
			serveEnv(redisLog, admin, "REDIS_URL=redis://"+redis.addr, "REDIS_FAILURE_MODE=closed"),
			func(a string) []string { return []string{o.bin, "serve", "--listen", a} })
		if err != nil {
			return err
		}
		gr.proxies, gr.accessLog, gr.admin = true, redisLog, admin
	}

	if o.peers {
		if err := b.startPeers(keys, up.addr); err != nil {
			return err
		}
	}
	return nil
}

// startPeers starts nginx and HAProxy from the templates in -peers-dir.
func (b *bench) startPeers(keys []keyset.Key, upstream string) error {
	cfg, nginxMap, err := b.peersConfig(keys, upstream)
	if err != nil {
		return err
	}
	ng, err := b.startNginx("", cfg, nginxMap)
	if err != nil {
		return err
	}
	b.targets[ng.name] = ng
	hp, err := b.startHAProxy("", cfg)
	if err != nil {
		return err
	}
	b.targets[hp.name] = hp
	return nil
}

// peersConfig writes the key maps of keys into the run's directory and
// returns the peers' configuration for them, in front of upstream (with
// HAProxy's maps), and nginx's map.
func (b *bench) peersConfig(keys []keyset.Key, upstream string) (cfg peers.Config, nginxMap string, err error) {
	cfg = peers.Config{Dir: b.dir, Upstream: upstream, Workers: cpuCount(b.o.serverCPU), DefaultRPM: keyset.DefaultRPM}
	nginxMap, cfg.KeysMap, cfg.LimitsMap, err = peers.WriteMaps(b.dir, keys, &cfg)
	return cfg, nginxMap, err
}

// startNginx starts nginx configured by cfg with keysMap, its map (its
// Listen and AccessLog chosen here), pinned to the server's core, and
// returns it as a target named "nginx", or "nginx-"+suffix with its own
// directory under the run's (nginx writes its pid file there).
func (b *bench) startNginx(suffix string, cfg peers.Config, keysMap string) (*target, error) {
	name := "nginx"
	if suffix != "" {
		name += "-" + suffix
		cfg.Dir = filepath.Join(b.dir, name)
	}
	for _, d := range []string{"nginx-body", "nginx-proxy", "nginx-fastcgi", "nginx-uwsgi", "nginx-scgi"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	cfg.KeysMap = keysMap
	cfg.Listen = mustFreeAddr()
	cfg.AccessLog = filepath.Join(b.dir, name+"-access.log")
	conf, err := peers.Render(filepath.Join(b.o.peersDir, "nginx.conf.tmpl"), b.dir, name+".conf", cfg)
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command("nginx", "-t", "-q", "-c", conf).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t %s: %v: %s", conf, err, out)
	}
	p, err := b.start(name, b.o.serverCPU, nil, nil, nil, "nginx", "-c", conf, "-g", "daemon off;")
	if err != nil {
		return nil, err
	}
	if err := proc.WaitListening(p, cfg.Listen, 15*time.Second); err != nil {
		return nil, err
	}
	return &target{name: name, addr: cfg.Listen, procs: []*proc.Process{p}, proxies: true, accessLog: cfg.AccessLog}, nil
}

// startHAProxy starts HAProxy configured by cfg (its Listen and AccessLog
// chosen here), its log piped to cat, which appends it to the file, both
// pinned to the server's core, and returns it as a target named
// "haproxy", or "haproxy-"+suffix.
func (b *bench) startHAProxy(suffix string, cfg peers.Config) (*target, error) {
	name := "haproxy"
	if suffix != "" {
		name += "-" + suffix
	}
	cfg.Listen = mustFreeAddr()
	cfg.AccessLog = filepath.Join(b.dir, name+"-access.log")
	conf, err := peers.Render(filepath.Join(b.o.peersDir, "haproxy.cfg.tmpl"), b.dir, name+".cfg", cfg)
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command("haproxy", "-c", "-q", "-f", conf).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("haproxy -c %s: %v: %s", conf, err, out)
	}
	logFile, err := os.OpenFile(cfg.AccessLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	// HAProxy's writes to the pipe do not block: a line that does not fit
	// is dropped. cat shares HAProxy's core, so the pipe gets Linux's
	// largest default size (1 MiB, /proc/sys/fs/pipe-max-size) rather than
	// 64 KiB, to carry the log over the moments cat waits for the core.
	// F_SETPIPE_SZ (1031) is Linux's; elsewhere the call just fails.
	syscall.Syscall(syscall.SYS_FCNTL, pw.Fd(), 1031, 1<<20)
	cat, err := b.start(name+"-log", b.o.serverCPU, nil, pr, logFile, "cat")
	pr.Close()
	if err != nil {
		pw.Close()
		return nil, err
	}
	p, err := b.start(name, b.o.serverCPU, nil, nil, pw, "haproxy", "-db", "-f", conf)
	pw.Close()
	if err != nil {
		return nil, err
	}
	if err := proc.WaitListening(p, cfg.Listen, 15*time.Second); err != nil {
		return nil, err
	}
	return &target{name: name, addr: cfg.Listen, procs: []*proc.Process{p, cat}, proxies: true, accessLog: cfg.AccessLog, lossyLog: true}, nil
}

// mustFreeAddr is proc.FreeAddr for a machine that has free loopback
// ports: it panics if there is none.
func mustFreeAddr() string {
	a, err := proc.FreeAddr()
	if err != nil {
		panic("BUG: no free loopback port: " + err.Error())
	}
	return a
}

// cpuCount returns how many CPUs a taskset list such as "0", "0,1" or
// "0-3" names; for an empty list, all of them.
func cpuCount(list string) int {
	if list == "" {
		return runtime.NumCPU()
	}
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			n++
			continue
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || h < l {
			n++
			continue
		}
		n += h - l + 1
	}
	return max(n, 1)
}
