package peers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authgate/authgate/bench/internal/keyset"
)

// renderPeers renders both peer configurations into a temporary directory,
// the streams-at-scale ones if scale.
func renderPeers(t *testing.T, scale bool) (dir, nginxConf, haproxyConf string) {
	t.Helper()
	dir = t.TempDir()
	cfg := Config{Dir: dir, Upstream: "127.0.0.1:1", Workers: 1, DefaultRPM: keyset.DefaultRPM}
	if scale {
		cfg.Scale, cfg.MaxConns, cfg.NoFile = true, 10100, 20000
	}
	nginxMap, hk, hl, err := WriteMaps(dir, keyset.Keys(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.KeysMap, cfg.LimitsMap = hk, hl
	nc := cfg
	nc.KeysMap, nc.Listen, nc.AccessLog = nginxMap, "127.0.0.1:2", filepath.Join(dir, "nginx-access.log")
	if nginxConf, err = Render("../../peers/nginx.conf.tmpl", dir, "nginx.conf", nc); err != nil {
		t.Fatal(err)
	}
	hc := cfg
	hc.Listen, hc.AccessLog = "127.0.0.1:3", filepath.Join(dir, "haproxy-access.log")
	if haproxyConf, err = Render("../../peers/haproxy.cfg.tmpl", dir, "haproxy.cfg", hc); err != nil {
		t.Fatal(err)
	}
	return dir, nginxConf, haproxyConf
}

func TestPeerConfigs(t *testing.T) {
	dir, nginxConf, haproxyConf := renderPeers(t, false)
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
	if !strings.Contains(string(maps), "\"Bearer "+keyset.Valid+"\" bench;\n") {
		t.Error("nginx-keys.map lacks the valid key")
	}
	limits, _ := os.ReadFile(filepath.Join(dir, "haproxy-limits.map"))
	if string(limits) != "bench 10000000\nlimited 1\n" {
		t.Errorf("haproxy-limits.map = %q", limits)
	}

	for _, absent := range []string{"proxy_buffering off;", "location = /healthz"} {
		if strings.Contains(string(n), absent) {
			t.Errorf("nginx.conf has %q outside the streams-at-scale scenario", absent)
		}
	}
	if strings.Contains(string(h), "    option http-no-delay") || strings.Contains(string(h), "path /healthz") {
		t.Error("haproxy.cfg has the streams-at-scale settings")
	}
	checkPeers(t, dir, nginxConf, haproxyConf)
}

// TestPeerConfigsScale: the streams-at-scale instances pass events on as
// they come, answer /healthz themselves, and have room for 10,000
// streams.
func TestPeerConfigsScale(t *testing.T) {
	dir, nginxConf, haproxyConf := renderPeers(t, true)
	n, _ := os.ReadFile(nginxConf)
	h, _ := os.ReadFile(haproxyConf)
	for _, want := range []string{"worker_rlimit_nofile 20000;", "worker_connections 20000;", "proxy_buffering off;", "location = /healthz {"} {
		if !strings.Contains(string(n), want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	for _, want := range []string{"maxconn 10100\n", "ulimit-n 20000\n", "no strict-limits\n", "option http-no-delay\n", "if { path /healthz }"} {
		if !strings.Contains(string(h), want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	checkPeers(t, dir, nginxConf, haproxyConf)
}

// checkPeers: where nginx and HAProxy are installed (`make bench-peers`
// installs them), they accept the configurations.
func checkPeers(t *testing.T, dir, nginxConf, haproxyConf string) {
	t.Helper()
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
