package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// renderPeers renders both peer configurations into a temporary directory.
func renderPeers(t *testing.T) (dir, nginxConf, haproxyConf string) {
	t.Helper()
	dir = t.TempDir()
	cfg := peerConfig{Dir: dir, Upstream: "127.0.0.1:1", Workers: 1, DefaultRPM: defaultRPM}
	nginxMap, hk, hl, err := writePeerMaps(dir, keySet(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.KeysMap, cfg.LimitsMap = hk, hl
	nc := cfg
	nc.KeysMap, nc.Listen, nc.AccessLog = nginxMap, "127.0.0.1:2", filepath.Join(dir, "nginx-access.log")
	if nginxConf, err = renderPeerConfig("../../peers/nginx.conf.tmpl", dir, "nginx.conf", nc); err != nil {
		t.Fatal(err)
	}
	hc := cfg
	hc.Listen, hc.AccessLog = "127.0.0.1:3", filepath.Join(dir, "haproxy-access.log")
	if haproxyConf, err = renderPeerConfig("../../peers/haproxy.cfg.tmpl", dir, "haproxy.cfg", hc); err != nil {
		t.Fatal(err)
	}
	return dir, nginxConf, haproxyConf
}

func TestPeerConfigs(t *testing.T) {
	dir, nginxConf, haproxyConf := renderPeers(t)
	n, _ := os.ReadFile(nginxConf)
	h, _ := os.ReadFile(haproxyConf)
	for _, want := range []string{
		"worker_processes 1;",
		"limit_req_zone $lim_rpm1 zone=rpm1:1m rate=1r/m;",
		"limit_req_zone $lim_rpm10000000 zone=rpm10000000:1m rate=10000000r/m;",
		"limit_req zone=rpm10000000 burst=9999999 nodelay;",
		"limit_req zone=rpm_default burst=99 nodelay;",
		"        limited \"\";",
		"proxy_set_header Authorization \"\";",
		"keepalive 256;",
		"buffer=64k flush=1s",
	} {
		if !strings.Contains(string(n), want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	for _, want := range []string{"bind 127.0.0.1:3", "server upstream 127.0.0.1:1", "map_str_int(" + filepath.Join(dir, "haproxy-limits.map") + ",100)", "del-header authorization", "http-reuse always"} {
		if !strings.Contains(string(h), want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	maps, _ := os.ReadFile(filepath.Join(dir, "nginx-keys.map"))
	if !strings.Contains(string(maps), "\"Bearer "+keyValid+"\" bench;\n") {
		t.Error("nginx-keys.map lacks the valid key")
	}
	limits, _ := os.ReadFile(filepath.Join(dir, "haproxy-limits.map"))
	if string(limits) != "bench 10000000\nlimited 1\n" {
		t.Errorf("haproxy-limits.map = %q", limits)
	}

	// Where nginx and HAProxy are installed (`make bench-peers` installs
	// them), they accept the configurations.
	if _, err := exec.LookPath("nginx"); err == nil {
		os.MkdirAll(filepath.Join(dir, "nginx-body"), 0o755)
		if out, err := exec.Command("nginx", "-t", "-q", "-c", nginxConf).CombinedOutput(); err != nil {
			t.Errorf("nginx -t: %v: %s", err, out)
		}
	}
	if _, err := exec.LookPath("haproxy"); err == nil {
		if out, err := exec.Command("haproxy", "-c", "-q", "-f", haproxyConf).CombinedOutput(); err != nil {
			t.Errorf("haproxy -c: %v: %s", err, out)
		}
	}
}

func TestParseWrk(t *testing.T) {
	out := []byte("Running 2s test @ http://127.0.0.1:1/v1/chat/completions\n  1 threads and 64 connections\n" +
		`{"requests":1000,"duration_us":2000000,"bytes":5,"connect_errors":0,"read_errors":1,"write_errors":0,"status_errors":1000,"timeouts":0,"p50_us":500,"p90_us":700,"p99_us":900,"max_us":1500}` + "\n")
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 1000 || r.DurationUS != 2e6 || r.StatusErrors != 1000 || r.ReadErrors != 1 || r.P99 != 900 || r.Max != 1500 {
		t.Errorf("parsed %+v", r)
	}
	if _, err := parseWrk([]byte("unable to connect\n")); err == nil {
		t.Error("no result line: no error")
	}
}

func TestProcHelpers(t *testing.T) {
	f := statFields([]byte("123 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13\n"))
	if len(f) < 15 || f[1] != "a (b) c" || f[2] != "S" || f[13] != "11" || f[14] != "12" {
		t.Errorf("statFields: %q", f)
	}
	for _, c := range []struct {
		in   string
		want int
	}{{"0", 1}, {"0,1", 2}, {"0-3", 4}, {"0,2-3", 3}} {
		if got := cpuCount(c.in); got != c.want {
			t.Errorf("cpuCount(%q) = %d, want %d", c.in, got, c.want)
		}
	}
	if procCPU(os.Getpid()) < 0 {
		t.Error("negative CPU time")
	}
	p := filepath.Join(t.TempDir(), "log")
	os.WriteFile(p, []byte("a\nb\nc\n"), 0o644)
	if n, err := countLines(p); n != 3 || err != nil {
		t.Errorf("countLines = %d, %v", n, err)
	}
	if n, err := countLines(p + ".missing"); n != 0 || err != nil {
		t.Errorf("countLines of a missing file = %d, %v", n, err)
	}
}
