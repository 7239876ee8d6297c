package main

// End-to-end tests of the authgate command (docs/configuration.md and the
// pages it links). The first half calls run in process with a map-backed
// environment; the second half builds the real binary once and runs
// `authgate serve` and `authgate demo` as subprocesses in front of a mock
// upstream on loopback, talking to them over HTTP and signals.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/logsink"
	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

// ---------------------------------------------------------------------------
// In process: run with a fake environment.
// ---------------------------------------------------------------------------

// unset, as a value in an environment map given to runCLI, removes the
// variable from the base environment.
const unset = "\x00unset"

// mapEnv is an env backed by m.
func mapEnv(m map[string]string) env {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI calls run(args) with environ as its environment and stdin as its
// standard input. No in-process case is meant to serve, so a run that has
// not returned after 10 s fails the test.
func runCLI(t *testing.T, args []string, environ map[string]string, stdin string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	getenv := mapEnv(maps.Clone(environ))
	go func() { done <- run(args, getenv, strings.NewReader(stdin), &stdout, &stderr) }()
	select {
	case code := <-done:
		return cliResult{code, stdout.String(), stderr.String()}
	case <-time.After(10 * time.Second):
		t.Fatalf("authgate %q did not return within 10 s (is it serving?)", args)
		return cliResult{}
	}
}

// withEnv returns base with extra applied (unset removes a variable).
func withEnv(base, extra map[string]string) map[string]string {
	m := maps.Clone(base)
	for k, v := range extra {
		if v == unset {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

func TestRunUsageAndConfigErrorsExit2(t *testing.T) {
	// No keys file in DATA_DIR: a bad setting that slipped through would
	// fail on the keys (naming api_keys.txt) instead of serving, and the
	// message check below would catch it.
	base := map[string]string{
		"DATA_DIR":     t.TempDir(),
		"UPSTREAM_URL": "http://127.0.0.1:1",
		"LISTEN_ADDR":  "127.0.0.1:0",
		"ADMIN_ADDR":   "",
	}
	f := func(args []string, extra map[string]string, wantInStderr string) {
		t.Helper()
		r := runCLI(t, args, withEnv(base, extra), "")
		if r.code != exitUsage {
			t.Errorf("authgate %q with %v: exit %d, want %d; stderr:\n%s", args, extra, r.code, exitUsage, r.stderr)
			return
		}
		if !strings.Contains(r.stderr, wantInStderr) {
			t.Errorf("authgate %q with %v: stderr does not name %q:\n%s", args, extra, wantInStderr, r.stderr)
		}
		if strings.Contains(r.stderr, "no valid API key") {
			t.Errorf("authgate %q with %v: got past configuration to the keys:\n%s", args, extra, r.stderr)
		}
	}
	serve := []string{"serve"}

	// Each variable, by its name.
	f(serve, map[string]string{"MAX_REQUESTS_PER_MINUTE": "abc"}, "MAX_REQUESTS_PER_MINUTE")
	f(serve, map[string]string{"MAX_REQUESTS_PER_MINUTE": "0"}, "MAX_REQUESTS_PER_MINUTE")
	f(serve, map[string]string{"AUTH_ENABLED": "maybe"}, "AUTH_ENABLED")
	f(serve, map[string]string{"AUTH_ALLOW_NO_KEYS": "perhaps"}, "AUTH_ALLOW_NO_KEYS")
	f(serve, map[string]string{"UPSTREAM_URL": unset}, "UPSTREAM_URL")
	f(serve, map[string]string{"UPSTREAM_URL": ""}, "UPSTREAM_URL")
	f(serve, map[string]string{"UPSTREAM_URL": "ftp://x"}, "UPSTREAM_URL")
	f(serve, map[string]string{"UPSTREAM_URL": "http://127.0.0.1:1,"}, "UPSTREAM_URL")
	f(serve, map[string]string{"UPSTREAM_URL": "http://127.0.0.1:1/?q=1"}, "UPSTREAM_URL")
	f(serve, map[string]string{"UPSTREAM_URL": "http://127.0.0.1:1 models=a||b"}, "UPSTREAM_URL")
	f(serve, map[string]string{"UPSTREAM_URL": "http://127.0.0.1:1 weight=2"}, "UPSTREAM_URL")
	f(serve, map[string]string{"MODEL_ALIASES": "a=b,b=c"}, "MODEL_ALIASES")
	f(serve, map[string]string{"MODEL_ALIASES": "a"}, "MODEL_ALIASES")
	f(serve, map[string]string{"MAX_REQUEST_BODY": "12XB"}, "MAX_REQUEST_BODY")
	f(serve, map[string]string{"MAX_REQUEST_BODY": "0"}, "MAX_REQUEST_BODY")
	f(serve, map[string]string{"MAX_REQUEST_BODY": "3GiB"}, "MAX_REQUEST_BODY")
	f(serve, map[string]string{"UPSTREAM_TIMEOUT": "-1s"}, "UPSTREAM_TIMEOUT")
	f(serve, map[string]string{"UPSTREAM_TIMEOUT": "10"}, "UPSTREAM_TIMEOUT")
	f(serve, map[string]string{"SHUTDOWN_GRACE": "0s"}, "SHUTDOWN_GRACE")
	f(serve, map[string]string{"READ_TIMEOUT": "0s"}, "READ_TIMEOUT")
	f(serve, map[string]string{"WRITE_TIMEOUT": "-1s"}, "WRITE_TIMEOUT")
	f(serve, map[string]string{"IDLE_TIMEOUT": "2"}, "IDLE_TIMEOUT")
	f(serve, map[string]string{"MAX_CONNS": "0"}, "MAX_CONNS")
	f(serve, map[string]string{"MAX_CONNS": "many"}, "MAX_CONNS")
	f(serve, map[string]string{"MAX_CONNS_PER_IP": "-1"}, "MAX_CONNS_PER_IP")
	f(serve, map[string]string{"MAX_HEADER_BYTES": "512"}, "MAX_HEADER_BYTES")
	f(serve, map[string]string{"MAX_HEADER_BYTES": "16XB"}, "MAX_HEADER_BYTES")
	f(serve, map[string]string{"ACCESS_LOG_FORMAT": "xml"}, "ACCESS_LOG_FORMAT")
	f(serve, map[string]string{"ADMIN_ADDR": "localhost"}, "ADMIN_ADDR")
	f(serve, map[string]string{"ADMIN_TOKEN": "0123456789abcde"}, "ADMIN_TOKEN")
	f(serve, map[string]string{"ADMIN_TOKEN": "0123456789 abcdef"}, "ADMIN_TOKEN")
	f(serve, map[string]string{"ADMIN_TOKEN": "0123456789abcdef\n"}, "ADMIN_TOKEN")
	// TLS: half a pair names the missing half; an unreadable file is named.
	f(serve, map[string]string{"TLS_CERT_FILE": "/x/cert.pem"}, "TLS_KEY_FILE")
	f(serve, map[string]string{"TLS_KEY_FILE": "/x/key.pem"}, "TLS_CERT_FILE")
	f([]string{"serve", "--tls-key", "/x/key.pem"}, nil, "--tls-cert")
	f(serve, map[string]string{"TLS_CERT_FILE": "/x/cert.pem", "TLS_KEY_FILE": "/x/key.pem"}, "/x/cert.pem")
	f(serve, map[string]string{"REDIS_URL": "http://x"}, "REDIS_URL")
	f(serve, map[string]string{"REDIS_URL": "redis://x/notadb"}, "REDIS_URL")
	f(serve, map[string]string{"REDIS_FAILURE_MODE": "sometimes"}, "REDIS_FAILURE_MODE")
	f(serve, map[string]string{"REDIS_TIMEOUT": "0s"}, "REDIS_TIMEOUT")

	// Each flag, by its name, even when its variable is valid.
	f([]string{"serve", "--rpm", "0"}, nil, "--rpm")
	f([]string{"serve", "--rpm=-3"}, map[string]string{"MAX_REQUESTS_PER_MINUTE": "7"}, "--rpm")
	f([]string{"serve", "--auth-enabled", "maybe"}, map[string]string{"AUTH_ENABLED": "true"}, "--auth-enabled")
	f([]string{"serve", "--upstream", "ftp://x"}, nil, "--upstream")
	f([]string{"serve", "--max-request-body", "12XB"}, nil, "--max-request-body")
	f([]string{"serve", "--upstream-timeout", "-1s"}, nil, "--upstream-timeout")
	f([]string{"serve", "--access-log-format", "xml"}, nil, "--access-log-format")
	f([]string{"serve", "--write-timeout", "0s"}, nil, "--write-timeout")
	f([]string{"serve", "--max-conns-per-ip", "x"}, nil, "--max-conns-per-ip")
	f([]string{"serve", "--redis-url", "redis:x"}, nil, "--redis-url")
	f([]string{"serve", "--redis-failure-mode", "fallback"}, nil, "--redis-failure-mode")
	f([]string{"serve", "--admin-token", "short"}, map[string]string{"ADMIN_TOKEN": "0123456789abcdef"}, "--admin-token")
	f([]string{"serve", "--admin-token="}, nil, "--admin-token")

	// Usage.
	f(nil, nil, "usage:")
	f([]string{"frobnicate"}, nil, `"frobnicate"`)
	f([]string{"serve", "--bogus"}, nil, "-bogus")
	f([]string{"serve", "extra"}, nil, `"extra"`)
	f([]string{"demo", "--bogus"}, nil, "-bogus")
	f([]string{"mock-upstream", "--bogus"}, nil, "-bogus")
	f([]string{"keys"}, nil, "usage:")
	f([]string{"keys", "rotate"}, nil, `"rotate"`)
	f([]string{"keys", "check"}, nil, "usage:")
	f([]string{"keys", "gen", "--bogus"}, nil, "-bogus")
}

func TestRunHelpExits0(t *testing.T) {
	f := func(args []string, wantIn string) {
		t.Helper()
		r := runCLI(t, args, nil, "")
		if r.code != exitOK {
			t.Errorf("authgate %q: exit %d, want 0; stderr:\n%s", args, r.code, r.stderr)
		}
		if out := r.stdout + r.stderr; !strings.Contains(out, wantIn) {
			t.Errorf("authgate %q: output does not mention %q:\n%s", args, wantIn, out)
		}
	}
	f([]string{"help"}, "keys check FILE")
	f([]string{"--help"}, "keys check FILE")
	f([]string{"serve", "-h"}, "MAX_REQUESTS_PER_MINUTE")
}

func TestRunServeFailsClosedNamingTheKeysFile(t *testing.T) {
	const keyInBadLine = "sk-secret-in-a-bad-line-000001"
	f := func(name string, content *string, extra map[string]string) {
		t.Helper()
		dir := t.TempDir()
		keysPath := filepath.Join(dir, "api_keys.txt")
		if p, ok := extra["AUTH_KEYS_FILE"]; ok {
			keysPath = p
		}
		if content != nil {
			if err := os.WriteFile(keysPath, []byte(*content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		environ := withEnv(map[string]string{
			"DATA_DIR":     dir,
			"UPSTREAM_URL": "http://127.0.0.1:1",
			"LISTEN_ADDR":  "127.0.0.1:0",
		}, extra)
		r := runCLI(t, []string{"serve"}, environ, "")
		if r.code != exitUsage {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", name, r.code, exitUsage, r.stderr)
		}
		if !strings.Contains(r.stderr, keysPath) {
			t.Errorf("%s: stderr does not name the keys file %q:\n%s", name, keysPath, r.stderr)
		}
		if strings.Contains(r.stderr, keyInBadLine) {
			t.Errorf("%s: stderr shows a key:\n%s", name, r.stderr)
		}
		// Fail closed means nothing was served, so nothing was logged.
		if _, err := os.Stat(filepath.Join(dir, "logs", "api_access.log")); err == nil {
			t.Errorf("%s: an access log was created by a gateway that refused to start", name)
		}
	}
	str := func(s string) *string { return &s }

	f("missing", nil, nil)
	f("missing, AUTH_ENABLED=true and AUTH_ALLOW_NO_KEYS=false given", nil,
		map[string]string{"AUTH_ENABLED": "true", "AUTH_ALLOW_NO_KEYS": "false"})
	f("empty", str(""), nil)
	f("comments and blank lines only", str("# nothing here\n\n   \n"), nil)
	f("only invalid lines", str(keyInBadLine+"\nbob:short\nbad id:"+keyInBadLine+"\nalice:"+keyInBadLine+" colour=blue\n"), nil)
	outside := filepath.Join(t.TempDir(), "elsewhere.txt")
	f("AUTH_KEYS_FILE missing", nil, map[string]string{"AUTH_KEYS_FILE": outside})
	f("AUTH_KEYS_FILE is a directory", nil, map[string]string{"AUTH_KEYS_FILE": t.TempDir()})
}

func TestRunServeInvalidLinesAreReportedByNumberWithoutTheKey(t *testing.T) {
	const badKey = "sk-this-key-must-never-be-printed-1"
	dir := t.TempDir()
	content := "# keys\n" + // 1
		badKey + "\n" + // 2: missing ':'
		"bob:tinysecret1\n" + // 3: bad key format
		"bad id:" + badKey + "\n" // 4: bad key_id
	if err := os.WriteFile(filepath.Join(dir, "api_keys.txt"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, []string{"serve"}, map[string]string{
		"DATA_DIR": dir, "UPSTREAM_URL": "http://127.0.0.1:1", "LISTEN_ADDR": "127.0.0.1:0",
	}, "")
	if r.code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, exitUsage, r.stderr)
	}
	for _, line := range []string{"line=2", "line=3", "line=4"} {
		if !strings.Contains(r.stderr, line) {
			t.Errorf("stderr does not report %s:\n%s", line, r.stderr)
		}
	}
	if strings.Contains(r.stderr, badKey) || strings.Contains(r.stderr, "tinysecret1") {
		t.Errorf("stderr shows a key:\n%s", r.stderr)
	}
}

// TestRunServeBadTrustedProxiesIsAConfigError: a TRUSTED_PROXIES item that
// is not an address or prefix, or a prefix with address bits beyond its
// length, stops serve with exit 2 and a message naming the variable (or
// flag) and the item.
func TestRunServeBadTrustedProxiesIsAConfigError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "api_keys.txt"), []byte("alice:sk-alice-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := func(args []string, value string, want ...string) {
		t.Helper()
		environ := map[string]string{"DATA_DIR": dir, "UPSTREAM_URL": "http://127.0.0.1:1", "LISTEN_ADDR": "127.0.0.1:0"}
		if value != "" {
			environ["TRUSTED_PROXIES"] = value
		}
		r := runCLI(t, append([]string{"serve"}, args...), environ, "")
		if r.code != exitUsage {
			t.Fatalf("TRUSTED_PROXIES=%q %q: exit %d, want %d; stderr:\n%s", value, args, r.code, exitUsage, r.stderr)
		}
		for _, w := range want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("TRUSTED_PROXIES=%q %q: stderr does not say %q:\n%s", value, args, w, r.stderr)
			}
		}
	}
	f(nil, "10.0.0.0/8, lb.internal", "TRUSTED_PROXIES", `"lb.internal"`)
	f(nil, "10.0.0.0/8,", "TRUSTED_PROXIES", "item 2 of 2", "empty")
	f(nil, "10.1.2.3/8", "TRUSTED_PROXIES", `"10.1.2.3/8"`, "10.0.0.0/8")
	f([]string{"--trusted-proxies", "2001:db8::/129"}, "", "--trusted-proxies", `"2001:db8::/129"`)
}

func TestRunServeMalformedListenAddrIsAConfigError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "api_keys.txt"), []byte("alice:sk-alice-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := func(args []string, listen, wantInStderr string) {
		t.Helper()
		r := runCLI(t, args, map[string]string{"DATA_DIR": dir, "UPSTREAM_URL": "http://127.0.0.1:1", "LISTEN_ADDR": listen}, "")
		if r.code != exitUsage || !strings.Contains(r.stderr, wantInStderr) {
			t.Errorf("authgate %q with LISTEN_ADDR=%q: exit %d, want %d naming %s; stderr:\n%s",
				args, listen, r.code, exitUsage, wantInStderr, r.stderr)
		}
	}
	f([]string{"serve"}, "nonsense", "LISTEN_ADDR")
	f([]string{"serve"}, "127.0.0.1:99999", "LISTEN_ADDR")
	f([]string{"serve", "--listen", "localhost"}, "127.0.0.1:0", "--listen")
}

func TestRunServeFlagWinsOverEnv(t *testing.T) {
	// An invalid MAX_REQUESTS_PER_MINUTE is overridden by --rpm, so serve
	// gets as far as the keys file (missing: the deliberate later error).
	dir := t.TempDir()
	r := runCLI(t, []string{"serve", "--rpm", "5"}, map[string]string{
		"DATA_DIR":                dir,
		"UPSTREAM_URL":            "http://127.0.0.1:1",
		"LISTEN_ADDR":             "127.0.0.1:0",
		"MAX_REQUESTS_PER_MINUTE": "abc",
	}, "")
	if r.code != exitUsage {
		t.Fatalf("exit %d, want %d (missing keys file); stderr:\n%s", r.code, exitUsage, r.stderr)
	}
	if strings.Contains(r.stderr, "MAX_REQUESTS_PER_MINUTE") || strings.Contains(r.stderr, "rpm") {
		t.Errorf("stderr complains about the rpm although --rpm overrides it:\n%s", r.stderr)
	}
	if want := filepath.Join(dir, "api_keys.txt"); !strings.Contains(r.stderr, want) {
		t.Errorf("stderr does not name the keys file %q:\n%s", want, r.stderr)
	}
}

func TestLoadServeConfigDefaults(t *testing.T) {
	var stderr bytes.Buffer
	c, err := loadServeConfig(nil, mapEnv(map[string]string{"UPSTREAM_URL": "http://127.0.0.1:8000"}), &stderr)
	if err != nil {
		t.Fatalf("loadServeConfig: %v", err)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("default %s = %v, want %v", name, got, want)
		}
	}
	check("AUTH_ENABLED (DisableAuth)", c.gw.DisableAuth, false)
	check("AUTH_KEYS_FILE", c.gw.KeysFile, "/data/api_keys.txt")
	check("MAX_REQUESTS_PER_MINUTE", c.gw.DefaultRPM, 100)
	check("LISTEN_ADDR", c.listen, ":8080")
	check("UPSTREAM_URL", strings.Join(c.gw.Upstreams, ","), "http://127.0.0.1:8000")
	check("UPSTREAM_API_KEY", c.gw.UpstreamAPIKey, "")
	check("ACCESS_LOG", c.gw.AccessLog, "/data/logs/api_access.log")
	check("ACCESS_LOG_FORMAT", c.gw.AccessLogFormat, logsink.FormatText)
	check("UPSTREAM_TIMEOUT", c.gw.UpstreamTimeout, 10*time.Minute)
	check("MAX_REQUEST_BODY", c.gw.MaxRequestBody, 32<<20)
	check("SHUTDOWN_GRACE", c.shutdownGrace, 30*time.Second)
	check("AUTH_ALLOW_NO_KEYS", c.gw.AllowNoKeys, false)
	check("ADMIN_ADDR", c.admin, "127.0.0.1:9090")
	check("ADMIN_TOKEN", c.gw.AdminToken, "")
	check("READ_TIMEOUT", c.gw.ReadTimeout, server.DefaultReadTimeout)
	check("WRITE_TIMEOUT", c.gw.WriteTimeout, server.DefaultWriteTimeout)
	check("IDLE_TIMEOUT", c.gw.IdleTimeout, server.DefaultIdleTimeout)
	check("MAX_CONNS", c.gw.MaxConns, server.DefaultMaxConns)
	check("MAX_CONNS_PER_IP", c.gw.MaxConnsPerIP, 0)
	check("TRUSTED_PROXIES", len(c.gw.TrustedProxies), 0)
	check("MAX_HEADER_BYTES", c.gw.MaxHeaderBytes, server.DefaultMaxHeaderBytes)
	if stderr.Len() != 0 {
		t.Errorf("defaults printed something:\n%s", stderr.String())
	}

	// DATA_DIR moves both default paths; --data-dir wins over it.
	f := func(args []string, environ map[string]string, wantKeys, wantLog string) {
		t.Helper()
		environ = withEnv(map[string]string{"UPSTREAM_URL": "http://127.0.0.1:8000"}, environ)
		c, err := loadServeConfig(args, mapEnv(environ), io.Discard)
		if err != nil {
			t.Fatalf("loadServeConfig(%q, %v): %v", args, environ, err)
		}
		if c.gw.KeysFile != wantKeys || c.gw.AccessLog != wantLog {
			t.Errorf("loadServeConfig(%q, %v): keys file %q, access log %q; want %q, %q",
				args, environ, c.gw.KeysFile, c.gw.AccessLog, wantKeys, wantLog)
		}
	}
	f(nil, map[string]string{"DATA_DIR": "/srv/ag"}, "/srv/ag/api_keys.txt", "/srv/ag/logs/api_access.log")
	f([]string{"--data-dir", "/flag"}, map[string]string{"DATA_DIR": "/env"}, "/flag/api_keys.txt", "/flag/logs/api_access.log")
	f(nil, map[string]string{"DATA_DIR": "/d", "AUTH_KEYS_FILE": "/k.txt", "ACCESS_LOG": "-"}, "/k.txt", "-")
	// An empty variable counts as unset.
	f(nil, map[string]string{"DATA_DIR": "", "AUTH_KEYS_FILE": "", "ACCESS_LOG": ""}, "/data/api_keys.txt", "/data/logs/api_access.log")
}

func TestLoadServeConfigEnvAndFlagWins(t *testing.T) {
	// f checks that envVal applies when alone, and that flagVal wins over
	// badEnv (an invalid value, which would be an error if read).
	type getter func(*serveConfig) any
	f := func(envName, envVal, flagName, flagVal, badEnv string, get getter, wantEnv, wantFlag any) {
		t.Helper()
		base := map[string]string{"UPSTREAM_URL": "http://127.0.0.1:8000"}
		c, err := loadServeConfig(nil, mapEnv(withEnv(base, map[string]string{envName: envVal})), io.Discard)
		if err != nil {
			t.Errorf("%s=%q: %v", envName, envVal, err)
		} else if got := get(c); got != wantEnv {
			t.Errorf("%s=%q: got %v, want %v", envName, envVal, got, wantEnv)
		}
		args := []string{"--" + flagName, flagVal}
		c, err = loadServeConfig(args, mapEnv(withEnv(base, map[string]string{envName: badEnv})), io.Discard)
		if err != nil {
			t.Errorf("%s=%q %q: %v (the flag should win)", envName, badEnv, args, err)
		} else if got := get(c); got != wantFlag {
			t.Errorf("%s=%q %q: got %v, want %v", envName, badEnv, args, got, wantFlag)
		}
	}
	f("MAX_REQUESTS_PER_MINUTE", "7", "rpm", "5", "abc", func(c *serveConfig) any { return c.gw.DefaultRPM }, 7, 5)
	f("AUTH_ENABLED", "false", "auth-enabled", "true", "maybe", func(c *serveConfig) any { return c.gw.DisableAuth }, true, false)
	f("AUTH_ALLOW_NO_KEYS", "true", "allow-no-keys", "false", "perhaps", func(c *serveConfig) any { return c.gw.AllowNoKeys }, true, false)
	f("UPSTREAM_URL", "http://a:1", "upstream", "http://b:2,https://c", "ftp://x", func(c *serveConfig) any { return strings.Join(c.gw.Upstreams, ",") }, "http://a:1", "http://b:2,https://c")
	f("UPSTREAM_URL", "http://a:1 models=m1|m2, http://b:2", "upstream", "http://c:3 models=m3", "http://a models=", func(c *serveConfig) any { return strings.Join(c.gw.Upstreams, ",") }, "http://a:1 models=m1|m2,http://b:2", "http://c:3 models=m3")
	f("MODEL_ALIASES", "gpt-4o=llama, mini = qwen", "model-aliases", "x=y", "a=a", func(c *serveConfig) any { return fmt.Sprint(c.gw.ModelAliases) }, "map[gpt-4o:llama mini:qwen]", "map[x:y]")
	f("UPSTREAM_TIMEOUT", "90s", "upstream-timeout", "2m", "-1s", func(c *serveConfig) any { return c.gw.UpstreamTimeout }, 90*time.Second, 2*time.Minute)
	f("MAX_REQUEST_BODY", "1KB", "max-request-body", "2KiB", "12XB", func(c *serveConfig) any { return c.gw.MaxRequestBody }, 1000, 2048)
	f("MAX_REQUEST_BODY", "5", "max-request-body", "1MB", "0", func(c *serveConfig) any { return c.gw.MaxRequestBody }, 5, 1000000)
	f("ACCESS_LOG_FORMAT", "json", "access-log-format", "text", "xml", func(c *serveConfig) any { return c.gw.AccessLogFormat }, logsink.FormatJSON, logsink.FormatText)
	f("SHUTDOWN_GRACE", "3s", "shutdown-grace", "4s", "0s", func(c *serveConfig) any { return c.shutdownGrace }, 3*time.Second, 4*time.Second)
	f("READ_TIMEOUT", "5s", "read-timeout", "6s", "0s", func(c *serveConfig) any { return c.gw.ReadTimeout }, 5*time.Second, 6*time.Second)
	f("WRITE_TIMEOUT", "7s", "write-timeout", "2m", "-1s", func(c *serveConfig) any { return c.gw.WriteTimeout }, 7*time.Second, 2*time.Minute)
	f("IDLE_TIMEOUT", "30s", "idle-timeout", "1h", "x", func(c *serveConfig) any { return c.gw.IdleTimeout }, 30*time.Second, time.Hour)
	f("MAX_CONNS", "50000", "max-conns", "100", "0", func(c *serveConfig) any { return c.gw.MaxConns }, 50000, 100)
	f("MAX_CONNS_PER_IP", "64", "max-conns-per-ip", "0", "-1", func(c *serveConfig) any { return c.gw.MaxConnsPerIP }, 64, 0)
	f("TRUSTED_PROXIES", "10.0.0.0/8, ::1", "trusted-proxies", "127.0.0.1", "10.1.2.3/8", func(c *serveConfig) any { return fmt.Sprint(c.gw.TrustedProxies) }, "[10.0.0.0/8 ::1/128]", "[127.0.0.1/32]")
	f("MAX_HEADER_BYTES", "8KiB", "max-header-bytes", "64KiB", "1", func(c *serveConfig) any { return c.gw.MaxHeaderBytes }, 8<<10, 64<<10)
	f("LISTEN_ADDR", "127.0.0.1:1", "listen", "127.0.0.1:2", "127.0.0.1:3", func(c *serveConfig) any { return c.listen }, "127.0.0.1:1", "127.0.0.1:2")
	f("UPSTREAM_API_KEY", "up-env", "upstream-api-key", "up-flag", "up-bad", func(c *serveConfig) any { return c.gw.UpstreamAPIKey }, "up-env", "up-flag")
	f("AUTH_KEYS_FILE", "/env/k", "keys-file", "/flag/k", "/bad/k", func(c *serveConfig) any { return c.gw.KeysFile }, "/env/k", "/flag/k")
	f("ACCESS_LOG", "/env/l", "access-log", "/flag/l", "/bad/l", func(c *serveConfig) any { return c.gw.AccessLog }, "/env/l", "/flag/l")
	f("REDIS_URL", "redis://a:1", "redis-url", "rediss://:pw@b:2/3", "redis:x", func(c *serveConfig) any { return c.redisURL }, "redis://a:1", "rediss://:pw@b:2/3")
	f("REDIS_FAILURE_MODE", "open", "redis-failure-mode", "closed", "sometimes", func(c *serveConfig) any { return c.gw.LimiterFailureMode }, server.FailureOpen, server.FailureClosed)
	f("REDIS_TIMEOUT", "20ms", "redis-timeout", "1s", "-1s", func(c *serveConfig) any { return c.redisTimeout }, 20*time.Millisecond, time.Second)
	f("ADMIN_TOKEN", "env-token-0123456789", "admin-token", "flag-token-0123456789", "short", func(c *serveConfig) any { return c.gw.AdminToken }, "env-token-0123456789", "flag-token-0123456789")
	f("ADMIN_ADDR", "127.0.0.1:1", "admin-listen", "127.0.0.1:2", "bogus", func(c *serveConfig) any { return c.admin }, "127.0.0.1:1", "127.0.0.1:2")
	// ADMIN_ADDR set but empty disables the admin listener, unlike other
	// empty variables, which count as unset; so does an empty flag.
	f("ADMIN_ADDR", "", "admin-listen", "", "bogus", func(c *serveConfig) any { return c.admin }, "", "")
}

func TestLoadServeConfigDoesNotPrintUpstreamCredentials(t *testing.T) {
	f := func(name, value, secret string) {
		t.Helper()
		_, err := loadServeConfig(nil, mapEnv(map[string]string{"UPSTREAM_URL": "http://127.0.0.1:1", name: value}), io.Discard)
		if err == nil {
			t.Fatalf("%s=%q accepted", name, value)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error shows the password: %v", name, err)
		}
	}
	f("UPSTREAM_URL", "http://user:hunter2secret@127.0.0.1:1", "hunter2secret")
	f("REDIS_URL", "redis://:hunter2secret@127.0.0.1:6379/notadb", "hunter2secret")
	f("REDIS_URL", "redis://:hunter2secret@[::1", "hunter2secret")
	f("ADMIN_TOKEN", "hunter2secret", "hunter2secret")
	f("ADMIN_TOKEN", "hunter2secret hunter2secret", "hunter2secret")
}

// keyLine matches the line printed by `keys gen --id alice`.
var keyLine = regexp.MustCompile(`^alice:(sk-[A-Za-z0-9_-]+)\n$`)

func TestKeysGen(t *testing.T) {
	gen := func() string {
		t.Helper()
		r := runCLI(t, []string{"keys", "gen", "--id", "alice"}, nil, "")
		if r.code != exitOK {
			t.Fatalf("keys gen: exit %d; stderr:\n%s", r.code, r.stderr)
		}
		m := keyLine.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("keys gen printed %q, want one line alice:sk-…", r.stdout)
		}
		key := m[1]
		if len(key) < 16 || len(key) > 128 {
			t.Errorf("key %q: length %d, want 16 to 128", key, len(key))
		}
		body := strings.TrimPrefix(key, "sk-")
		if len(body) < 43 {
			t.Errorf("key %q: %d characters after sk-, want at least 43 (256 bits of base64url)", key, len(body))
		}
		if raw, err := base64.RawURLEncoding.DecodeString(body); err != nil || len(raw) < 32 {
			t.Errorf("key %q: not at least 32 bytes of unpadded base64url (%d bytes, %v)", key, len(raw), err)
		}
		return key
	}
	a, b := gen(), gen()
	if a == b {
		t.Errorf("two runs of keys gen printed the same key %q", a)
	}

	// The line is valid for `keys check`, hence for serve.
	p := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(p, []byte("alice:"+a+"\nalice:"+b+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, []string{"keys", "check", p}, nil, ""); r.code != exitOK {
		t.Errorf("keys check of generated keys: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestKeysGenRejectsBadID(t *testing.T) {
	f := func(args ...string) {
		t.Helper()
		r := runCLI(t, append([]string{"keys", "gen"}, args...), nil, "")
		if r.code != exitUsage {
			t.Errorf("keys gen %q: exit %d, want %d", args, r.code, exitUsage)
		}
		if r.stdout != "" {
			t.Errorf("keys gen %q printed %q", args, r.stdout)
		}
		if !strings.Contains(r.stderr, "--id") && !strings.Contains(r.stderr, "-id") {
			t.Errorf("keys gen %q: stderr does not name --id:\n%s", args, r.stderr)
		}
	}
	f("--id", "bad id")
	f("--id", "a:b")
	f("--id", "")
	f()
}

func TestKeysHash(t *testing.T) {
	hashRe := regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`)
	f := func(stdin, key string) {
		t.Helper()
		r := runCLI(t, []string{"keys", "hash"}, nil, stdin)
		if r.code != exitOK {
			t.Fatalf("keys hash <%q: exit %d; stderr:\n%s", stdin, r.code, r.stderr)
		}
		if !hashRe.MatchString(r.stdout) {
			t.Errorf("keys hash <%q printed %q, want sha256:<64 lowercase hex>", stdin, r.stdout)
		}
		sum := sha256.Sum256([]byte(key))
		if want := "sha256:" + hex.EncodeToString(sum[:]) + "\n"; r.stdout != want {
			t.Errorf("keys hash <%q printed %q, want %q", stdin, r.stdout, want)
		}
	}
	f("sk-abcdefghijklmnop\n", "sk-abcdefghijklmnop")
	f("sk-abcdefghijklmnop", "sk-abcdefghijklmnop")
	f("  sk-abcdefghijklmnop \r\n", "sk-abcdefghijklmnop")
	f("0123456789abcdef\nsecond line ignored\n", "0123456789abcdef")
	f(strings.Repeat("K", 128)+"\n", strings.Repeat("K", 128))
}

func TestKeysHashRejectsInvalidKey(t *testing.T) {
	f := func(stdin string) {
		t.Helper()
		r := runCLI(t, []string{"keys", "hash"}, nil, stdin)
		if r.code != exitUsage {
			t.Errorf("keys hash <%q: exit %d, want %d", stdin, r.code, exitUsage)
		}
		if r.stdout != "" {
			t.Errorf("keys hash <%q printed %q", stdin, r.stdout)
		}
		if k := strings.TrimSpace(stdin); k != "" && strings.Contains(r.stderr, k) {
			t.Errorf("keys hash <%q: stderr shows the key:\n%s", stdin, r.stderr)
		}
	}
	f("")
	f("\n")
	f("short-key\n")
	f("sk-with a space-0123456789\n")
	f("sk-with.dot-0123456789\n")
	f(strings.Repeat("K", 129) + "\n")
	f("sha256:" + strings.Repeat("a", 64) + "\n")
}

func TestKeysCheck(t *testing.T) {
	const (
		keyA   = "sk-alice-check-0123456789"
		keyB   = "sk-bob-check-0123456789ab"
		keyBad = "sk-secret-in-the-bad-line-0001"
	)
	allKeys := []string{keyA, keyB, keyBad, "tiny-secret"}
	f := func(content string, wantCode int, wantLines ...string) {
		t.Helper()
		p := filepath.Join(t.TempDir(), "keys.txt")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, []string{"keys", "check", p}, nil, "")
		out := r.stdout + r.stderr
		if r.code != wantCode {
			t.Errorf("keys check of %q: exit %d, want %d\n%s", content, r.code, wantCode, out)
		}
		for _, l := range wantLines {
			if !regexp.MustCompile(`\b` + l + `\b`).MatchString(out) {
				t.Errorf("keys check of %q: output does not name %q:\n%s", content, l, out)
			}
		}
		if wantCode == exitOK && regexp.MustCompile(`line \d`).MatchString(out) {
			t.Errorf("keys check of a valid file reports a line:\n%s", out)
		}
		for _, k := range allKeys {
			if strings.Contains(out, k) {
				t.Errorf("keys check of %q: output shows key %q:\n%s", content, k, out)
			}
		}
	}
	sum := sha256.Sum256([]byte(keyB))
	hashedB := "sha256:" + hex.EncodeToString(sum[:])

	f("# keys\n\nalice:"+keyA+"\n  bob : "+hashedB+"  rpm=600\n", exitOK)
	f("alice:"+keyA+"\r\n", exitOK)
	f("alice:"+keyA+"\n"+keyBad+"\n", exitFailure, "line 2")                      // missing ':'
	f("alice:"+keyA+"\n\nbob:tiny-secret\n", exitFailure, "line 3")               // too short
	f("alice:"+keyA+"\nbad id:"+keyBad+"\n", exitFailure, "line 2")               // bad key_id
	f("alice:"+keyA+"\nbob:"+keyBad+" colour=blue\n", exitFailure, "line 2")      // unknown setting
	f("alice:"+keyA+"\nbob:"+keyBad+" "+keyB+"\n", exitFailure, "line 2")         // second key on the line
	f("alice:"+keyA+"\nbob:"+keyA+"\n", exitFailure, "line 2")                    // duplicate key
	f("alice:"+keyA+"\nbob:"+hashedB+"\ncarol:"+keyB+"\n", exitFailure, "line 3") // duplicate in plain and hashed form
	f("#1\nalice:"+keyA+"\n"+keyBad+"\nbob:tiny-secret\n", exitFailure, "line 3", "line 4")
	f("", exitFailure)
	f("# only a comment\n", exitFailure)

	// Expiry: a warning, not a failure, for a key_id expired or expiring
	// within 7 days; nothing for one further off.
	day := func(d int) string {
		return time.Now().UTC().Add(time.Duration(d) * 24 * time.Hour).Format(time.RFC3339)
	}
	f("alice:"+keyA+" expires="+day(3)+"\nbob:"+keyB+" expires="+day(30)+"\n", exitOK, "alice", "expires at", "within 7 days", "1 key_id")
	f("alice:"+keyA+" expires="+day(-1)+"\n", exitOK, "alice", "expired at")
	p := filepath.Join(t.TempDir(), "keys.txt")
	os.WriteFile(p, []byte("bob:"+keyB+" expires="+day(30)+"\n"), 0o600)
	if r := runCLI(t, []string{"keys", "check", p}, nil, ""); strings.Contains(r.stdout, "expire") {
		t.Errorf("keys check warns of a key_id expiring in 30 days:\n%s", r.stdout)
	}

	missing := filepath.Join(t.TempDir(), "missing.txt")
	r := runCLI(t, []string{"keys", "check", missing}, nil, "")
	if r.code != exitFailure {
		t.Errorf("keys check of a missing file: exit %d, want %d", r.code, exitFailure)
	}
	if !strings.Contains(r.stdout+r.stderr, missing) {
		t.Errorf("keys check of a missing file does not name it:\n%s%s", r.stdout, r.stderr)
	}
}

// ---------------------------------------------------------------------------
// Through the binary.
// ---------------------------------------------------------------------------

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// authgateBinary builds the authgate binary once per test run (with -race
// when the tests run with it, which also reuses their build cache) and
// returns its path.
func authgateBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH: cannot build the authgate binary for the end-to-end tests")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "authgate-cli-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "authgate")
		args := []string{"build", "-buildvcs=false", "-o", binPath}
		if raceEnabled() {
			args = append(args, "-race")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, goTool, append(args, ".")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// syncBuffer is a concurrency-safe output buffer that can be waited on.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced by every Write
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitLimit bounds every wait for an authgate process in these tests,
// generously, for a loaded machine running the race detector; reaching it
// fails the test. No test passes or fails by how long something took
// within it: the timings the docs promise are tested in the packages that
// keep them, on fake clocks (internal/keywatch, logsink).
const waitLimit = 10 * time.Second

// eventually polls cond every 20 ms until it holds, failing the test after
// waitLimit.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("%s: not within %v", what, waitLimit)
		case <-tick.C:
		}
	}
}

// waitFor waits until the buffer holds s at least n times; it reports
// whether it did within timeout.
func (b *syncBuffer) waitFor(s string, n int, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		b.mu.Lock()
		ok := strings.Count(b.buf.String(), s) >= n
		ch := b.changed
		b.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		}
	}
}

// proc is a running authgate subprocess.
type proc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	exited         chan struct{} // closed when the process has exited
	base           string        // http://host:port of its public listener
	hc             *http.Client
	sent           atomic.Int64 // numbers the X-Request-Id of each request sent
}

// startProc starts the binary with args and exactly the environment environ
// (nothing is inherited, so a developer's AUTH_ENABLED cannot leak in). The
// process is killed, by its pid, at the end of the test if still running.
func startProc(t *testing.T, args []string, environ map[string]string) *proc {
	t.Helper()
	bin := authgateBinary(t)
	p := &proc{
		t:      t,
		cmd:    exec.Command(bin, args...),
		stdout: newSyncBuffer(),
		stderr: newSyncBuffer(),
		exited: make(chan struct{}),
		hc: &http.Client{
			Timeout:   waitLimit,
			Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true},
		},
	}
	if v, ok := os.LookupEnv("GORACE"); ok {
		environ = withEnv(environ, map[string]string{"GORACE": v})
	}
	for k, v := range environ {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start authgate %q: %v", args, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.hc.CloseIdleConnections()
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				t.Errorf("authgate pid %d did not exit within 10 s of SIGKILL", p.cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("authgate %q stdout:\n%s\nstderr:\n%s", args, p.stdout, p.stderr)
		}
	})
	return p
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// startListening starts authgate on a free loopback port (mk builds its
// arguments and environment for that address) and waits, at most 10 s,
// until GET /healthz answers 200 "ok". A port taken between freePort and
// the child's bind is retried with another.
func startListening(t *testing.T, mk func(addr string) ([]string, map[string]string)) *proc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		args, environ := mk(addr)
		p := startProc(t, args, environ)
		p.base = "http://" + addr
		err := p.waitHealthy(10 * time.Second)
		if err == nil {
			return p
		}
		if p.hasExited() && strings.Contains(p.stderr.String(), "cannot listen") && attempt < 5 {
			t.Logf("port %s was taken, retrying: %s", addr, p.stderr)
			continue
		}
		t.Fatalf("authgate %q: %v\nstdout:\n%s\nstderr:\n%s", args, err, p.stdout, p.stderr)
	}
}

// startServe starts `authgate serve` with environ plus LISTEN_ADDR.
func startServe(t *testing.T, environ map[string]string) *proc {
	t.Helper()
	return startListening(t, func(addr string) ([]string, map[string]string) {
		return []string{"serve"}, withEnv(environ, map[string]string{"LISTEN_ADDR": addr})
	})
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *proc) waitHealthy(timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: time.Second, Transport: tr}
	for {
		resp, err := hc.Get(p.base + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "ok" {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited with code %d before serving", p.cmd.ProcessState.ExitCode())
		case <-deadline.C:
			return fmt.Errorf("GET /healthz not 200 ok within %v (last error: %v)", timeout, err)
		case <-tick.C:
		}
	}
}

// waitReady polls GET /readyz, for at most waitLimit, until it answers 200
// "ok" (docs/http.md#health: keys loaded and an upstream healthy, which may take a first
// health check).
func (p *proc) waitReady() {
	p.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		r := p.do("GET", "/readyz", "", "")
		if r.status == http.StatusOK && r.body == "ok" {
			return
		}
		select {
		case <-deadline.C:
			p.t.Fatalf("GET /readyz: %d %q, want 200 ok within %v", r.status, r.body, waitLimit)
		case <-tick.C:
		}
	}
}

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("send %v to pid %d: %v", sig, p.cmd.Process.Pid, err)
	}
}

// wait waits at most timeout for the process to exit and returns its exit
// code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		p.t.Fatalf("authgate pid %d still running %v after the stop signal", p.cmd.Process.Pid, timeout)
		return -1
	}
}

// stop sends sig and checks that the process exits 0 within grace plus a
// margin for the race detector.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	p.t.Helper()
	p.signal(sig)
	if code := p.wait(grace + 10*time.Second); code != exitOK {
		p.t.Fatalf("authgate exited %d after %v, want 0; stderr:\n%s", code, sig, p.stderr)
	}
}

// checkStderrClean fails if stderr shows any of keys or a data race.
func (p *proc) checkStderrClean(keys ...string) {
	p.t.Helper()
	s := p.stderr.String()
	for _, k := range keys {
		if strings.Contains(s, k) {
			p.t.Errorf("stderr shows key %q:\n%s", k, s)
		}
	}
	if strings.Contains(s, "DATA RACE") {
		p.t.Errorf("the race detector fired in authgate:\n%s", s)
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

// try sends a request with the Authorization header auth ("" for none).
func (p *proc) try(method, path, auth, body string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, p.base+path, rd)
	if err != nil {
		return response{}, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	// The gateway passes X-Request-Id on, so the upstream can tell the
	// test's requests from anything else (health checks, say).
	req.Header.Set("X-Request-Id", testRequestIDPrefix+strconv.FormatInt(p.sent.Add(1), 10))
	resp, err := p.hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}, err
}

func (p *proc) do(method, path, auth, body string) response {
	p.t.Helper()
	r, err := p.try(method, path, auth, body)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

const chatBody = `{"model":"mock-model","messages":[{"role":"user","content":"Hello"}]}`

// testRequestIDPrefix begins the X-Request-Id of every request the tests
// send through the gateway.
const testRequestIDPrefix = "e2e-test-"

// upstream is a mockupstream.Mock on loopback that records the
// Authorization and X-Request-Id headers it receives.
type upstream struct {
	url   string
	mu    sync.Mutex
	auths []string
	ids   []string
}

func startUpstream(t *testing.T) *upstream { return startUpstreamWith(t, mockupstream.Config{}) }

// startUpstreamWith is startUpstream with the mock configured by cfg.
func startUpstreamWith(t *testing.T, cfg mockupstream.Config) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{url: "http://" + ln.Addr().String()}
	mock := mockupstream.New(cfg)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		u.mu.Lock()
		u.auths = append(u.auths, string(ctx.Request.Header.Peek("Authorization")))
		u.ids = append(u.ids, string(ctx.Request.Header.Peek("X-Request-Id")))
		u.mu.Unlock()
		mock.Handler(ctx)
	}}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Shutdown()
		<-served
	})
	return u
}

// requests returns how many of the test's requests reached the upstream
// (any other request, such as a health check, is not counted), and fails if
// any request carried one of keys.
func (u *upstream) requests(t *testing.T, keys ...string) int {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, a := range u.auths {
		for _, k := range keys {
			if strings.Contains(a, k) {
				t.Errorf("the client's key %q reached the upstream (Authorization %q)", k, a)
			}
		}
	}
	n := 0
	for _, id := range u.ids {
		if strings.HasPrefix(id, testRequestIDPrefix) {
			n++
		}
	}
	return n
}

// gatewayEnv writes keysContent (nil: no file) to DATA_DIR/api_keys.txt and
// returns serve's environment for up.
func gatewayEnv(t *testing.T, up *upstream, keysContent *string, extra map[string]string) (environ map[string]string, dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	if keysContent != nil {
		writeFileAtomic(t, filepath.Join(dataDir, "api_keys.txt"), *keysContent)
	}
	return withEnv(map[string]string{
		"DATA_DIR":                dataDir,
		"UPSTREAM_URL":            up.url,
		"ADMIN_ADDR":              "",
		"SHUTDOWN_GRACE":          "10s",
		"MAX_REQUESTS_PER_MINUTE": "100000",
		"TMPDIR":                  t.TempDir(),
	}, extra), dataDir
}

// writeFileAtomic replaces path by content, as configuration management
// does: write a temporary file, then rename it over path.
func writeFileAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// testKey returns a fresh key in the format `keys gen` prints.
func testKey(t *testing.T) string {
	t.Helper()
	k, err := newKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// logLineRe is the access log line of docs/operations.md#access-log.
var logLineRe = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \| (\S+) \| (\S+) (\S+) \| (\d{3})$`)

// readLog returns the access log's lines, each checked against docs/operations.md#access-log,
// as "KEY_ID | METHOD PATH | STATUS"; it fails if the log shows one of keys.
func readLog(t *testing.T, path string, keys ...string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("access log: %v", err)
	}
	for _, k := range keys {
		if bytes.Contains(b, []byte(k)) {
			t.Errorf("the access log shows key %q", k)
		}
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		m := logLineRe.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Errorf("access log line %d %q does not match %s", len(out)+1, sc.Text(), logLineRe)
			out = append(out, sc.Text())
			continue
		}
		ts := sc.Text()[:len("2006-01-02T15:04:05.000000Z")]
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("access log line %d: timestamp %q: %v", len(out)+1, ts, err)
		}
		out = append(out, m[1]+" | "+m[2]+" "+m[3]+" | "+m[4])
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Errorf("the access log does not end with a newline")
	}
	return out
}

// body401 is the 401 body of docs/http.md#authentication for message.
func body401(message string) string {
	return `{"error":{"message":"` + message + `","type":"invalid_request_error","param":"authorization","code":"invalid_api_key"}}`
}

// checkChatCompletion checks that r is the mock's chat completion.
func checkChatCompletion(t *testing.T, r response) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("chat completion: status %d, want 200; body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("chat completion: Content-Type %q", ct)
	}
	var c struct {
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Message struct{ Role, Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(r.body), &c); err != nil {
		t.Fatalf("chat completion body %q: %v", r.body, err)
	}
	if c.Object != "chat.completion" || c.Model != mockupstream.DefaultModel || len(c.Choices) != 1 ||
		c.Choices[0].Message.Role != "assistant" || c.Choices[0].Message.Content != "Hello from the mock upstream." {
		t.Errorf("chat completion body is not the mock's: %s", r.body)
	}
}

func TestServeBinaryAuthenticatesAndProxies(t *testing.T) {
	up := startUpstream(t)
	keyA, keyB := testKey(t), testKey(t)
	sum := sha256.Sum256([]byte(keyB))
	keys := "# test keys\nalice:" + keyA + "\nbob:sha256:" + hex.EncodeToString(sum[:]) + "\n"
	environ, _ := gatewayEnv(t, up, &keys, nil)
	p := startServe(t, environ)

	checkChatCompletion(t, p.do("POST", "/v1/chat/completions", "Bearer "+keyA, chatBody))
	checkChatCompletion(t, p.do("POST", "/v1/chat/completions", "bearer "+keyB, chatBody)) // hashed entry
	checkChatCompletion(t, p.do("POST", "/v1/chat/completions", keyA, chatBody))           // bare key, as the seed
	if r := p.do("GET", "/v1/models", "Bearer "+keyA, ""); r.status != http.StatusOK || !strings.Contains(r.body, mockupstream.DefaultModel) {
		t.Errorf("GET /v1/models: %d %s", r.status, r.body)
	}
	proxied := 4

	f := func(auth, message string) {
		t.Helper()
		r := p.do("POST", "/v1/chat/completions", auth, chatBody)
		if r.status != http.StatusUnauthorized {
			t.Errorf("Authorization %q: status %d, want 401", auth, r.status)
		}
		if want := body401(message); r.body != want {
			t.Errorf("Authorization %q: body\n%s\nwant\n%s", auth, r.body, want)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Authorization %q: Content-Type %q, want application/json", auth, ct)
		}
	}
	f("Bearer sk-not-a-real-key-0000", "Invalid API key")
	last := "x"
	if strings.HasSuffix(keyA, last) {
		last = "y"
	}
	f("Bearer "+keyA[:len(keyA)-1]+last, "Invalid API key") // one character off
	f("", "Missing Authorization header")
	f("Bearer   ", "Empty Authorization header")
	f("Bearer short", "Invalid API key format")

	if r := p.do("GET", "/healthz", "", ""); r.status != http.StatusOK || r.body != "ok" {
		t.Errorf("GET /healthz: %d %q, want 200 ok", r.status, r.body)
	}
	p.waitReady()
	if n := up.requests(t, keyA, keyB); n != proxied {
		t.Errorf("%d requests reached the upstream, want %d (rejected ones must not)", n, proxied)
	}

	p.stop(syscall.SIGTERM, 5*time.Second)
	p.checkStderrClean(keyA, keyB)
}

func TestServeBinaryLogsEveryRequestBySIGTERM(t *testing.T) {
	const n = 200
	up := startUpstream(t)
	key := testKey(t)
	keys := "alice:" + key + "\n"
	environ, dataDir := gatewayEnv(t, up, &keys, nil)
	p := startServe(t, environ)

	// Four kinds of request, in turn: two admitted, two refused. Queries are
	// not logged.
	kinds := []struct {
		method, path, auth, body string
		status                   int
		logged                   string
	}{
		{"POST", "/v1/chat/completions", "Bearer " + key, chatBody, 200, "alice | POST /v1/chat/completions | 200"},
		{"GET", "/v1/models?limit=1", "Bearer " + key, "", 200, "alice | GET /v1/models | 200"},
		{"POST", "/v1/chat/completions", "Bearer sk-not-a-real-key-0000", chatBody, 401, "- | POST /v1/chat/completions | 401"},
		{"GET", "/v1/models?secret=x", "", "", 401, "- | GET /v1/models | 401"},
	}
	want := map[string]int{}
	for i := range n {
		want[kinds[i%len(kinds)].logged]++
	}

	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				k := kinds[i%len(kinds)]
				r, err := p.try(k.method, k.path, k.auth, k.body)
				if err != nil {
					t.Errorf("request %d: %v", i, err)
					continue
				}
				if r.status != k.status {
					t.Errorf("request %d (%s %s): status %d, want %d: %s", i, k.method, k.path, r.status, k.status, r.body)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	p.stop(syscall.SIGTERM, 5*time.Second)

	lines := readLog(t, filepath.Join(dataDir, "logs", "api_access.log"), key)
	if len(lines) != n {
		t.Fatalf("access log has %d lines, want %d", len(lines), n)
	}
	got := map[string]int{}
	for _, l := range lines {
		got[l]++
	}
	if !maps.Equal(got, want) {
		t.Errorf("access log lines by kind:\n got %v\nwant %v", got, want)
	}
	p.checkStderrClean(key)
}

// TestServeBinaryLogLineReachesFileWhileServing: a request's line reaches
// the file while the process runs, without a signal or a shutdown to flush
// it. When (the next tick, docs/operations.md#buffering) is logsink's test.
func TestServeBinaryLogLineReachesFileWhileServing(t *testing.T) {
	up := startUpstream(t)
	key := testKey(t)
	keys := "alice:" + key + "\n"
	environ, dataDir := gatewayEnv(t, up, &keys, nil)
	p := startServe(t, environ)

	checkChatCompletion(t, p.do("POST", "/v1/chat/completions", "Bearer "+key, chatBody))

	logPath := filepath.Join(dataDir, "logs", "api_access.log")
	eventually(t, "an access log line in "+logPath, func() bool {
		b, _ := os.ReadFile(logPath)
		return bytes.Count(b, []byte("\n")) >= 1
	})
	if lines := readLog(t, logPath, key); len(lines) != 1 || lines[0] != "alice | POST /v1/chat/completions | 200" {
		t.Errorf("access log before shutdown: %q", lines)
	}
	p.checkStderrClean(key)
}

func TestServeBinarySIGHUPReloadsKeys(t *testing.T) {
	up := startUpstream(t)
	oldKey, newKey := testKey(t), testKey(t)
	keys := "alice:" + oldKey + "\n"
	environ, dataDir := gatewayEnv(t, up, &keys, nil)
	keysPath := filepath.Join(dataDir, "api_keys.txt")
	p := startServe(t, environ)

	if r := p.do("GET", "/v1/models", "Bearer "+oldKey, ""); r.status != http.StatusOK {
		t.Fatalf("old key before reload: %d %s", r.status, r.body)
	}

	// pollStatus requests with key until it gets want.
	pollStatus := func(key string, want int) {
		t.Helper()
		eventually(t, fmt.Sprintf("the key getting %d after SIGHUP", want), func() bool {
			return p.do("GET", "/v1/models", "Bearer "+key, "").status == want
		})
	}

	writeFileAtomic(t, keysPath, "alice:"+newKey+"\n")
	p.signal(syscall.SIGHUP)
	pollStatus(newKey, http.StatusOK)
	// The file is also watched: make sure the signal itself reloaded.
	if !p.stderr.waitFor("trigger=SIGHUP", 1, waitLimit) {
		t.Fatalf("no reload logged for the SIGHUP:\n%s", p.stderr)
	}
	if r := p.do("GET", "/v1/models", "Bearer "+oldKey, ""); r.status != http.StatusUnauthorized || r.body != body401("Invalid API key") {
		t.Errorf("old key after reload: %d %s, want 401 Invalid API key", r.status, r.body)
	}

	// A bad reload keeps the last good keys (never fails open) and says why.
	const leak = "sk-key-on-an-invalid-line-00000"
	bad := []struct{ name, content string }{
		{"only invalid lines", leak + "\nalice:tinysecret1\n"},
		{"empty", ""},
	}
	for i, b := range bad {
		writeFileAtomic(t, keysPath, b.content)
		p.signal(syscall.SIGHUP)
		if !p.stderr.waitFor("reload failed", i+1, waitLimit) {
			t.Fatalf("%s: stderr does not mention the failed reload:\n%s", b.name, p.stderr)
		}
		if r := p.do("GET", "/v1/models", "Bearer "+newKey, ""); r.status != http.StatusOK {
			t.Errorf("%s: last good key after a bad reload: %d %s, want 200", b.name, r.status, r.body)
		}
		if r := p.do("GET", "/v1/models", "", ""); r.status != http.StatusUnauthorized {
			t.Errorf("%s: no key after a bad reload: %d, want 401", b.name, r.status)
		}
		p.waitReady() // keys are still loaded
	}
	if err := os.Remove(keysPath); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	if !p.stderr.waitFor("reload failed", len(bad)+1, waitLimit) {
		t.Fatalf("missing file: stderr does not mention the failed reload:\n%s", p.stderr)
	}
	if r := p.do("GET", "/v1/models", "Bearer "+newKey, ""); r.status != http.StatusOK {
		t.Errorf("missing file: last good key after a bad reload: %d %s, want 200", r.status, r.body)
	}
	if !strings.Contains(p.stderr.String(), keysPath) {
		t.Errorf("stderr does not name the keys file %q", keysPath)
	}

	p.stop(syscall.SIGTERM, 5*time.Second)
	p.checkStderrClean(oldKey, newKey, leak, "tinysecret1")
}

func TestServeBinaryKeysFileIsWatched(t *testing.T) {
	up := startUpstream(t)
	oldKey, newKey := testKey(t), testKey(t)
	keys := "alice:" + oldKey + "\n"
	environ, dataDir := gatewayEnv(t, up, &keys, nil)
	p := startServe(t, environ)

	writeFileAtomic(t, filepath.Join(dataDir, "api_keys.txt"), "alice:"+newKey+"\n")
	// When it applies (docs/keys-file.md#reloading) is internal/keywatch's
	// test; here, that it does, with no SIGHUP.
	eventually(t, "a key written to the keys file (atomic rename, no SIGHUP) accepted", func() bool {
		return p.do("GET", "/v1/models", "Bearer "+newKey, "").status == http.StatusOK
	})
	if r := p.do("GET", "/v1/models", "Bearer "+oldKey, ""); r.status != http.StatusUnauthorized {
		t.Errorf("old key after the watched reload: %d, want 401", r.status)
	}
	p.stop(syscall.SIGTERM, 5*time.Second)
}

func TestServeBinaryAuthDisabled(t *testing.T) {
	up := startUpstream(t)
	environ, dataDir := gatewayEnv(t, up, nil, map[string]string{"AUTH_ENABLED": "false"})
	p := startServe(t, environ)

	checkChatCompletion(t, p.do("POST", "/v1/chat/completions", "", chatBody))
	if s := p.stderr.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, "AUTH_ENABLED=false") {
		t.Errorf("stderr has no warning that authentication is disabled:\n%s", s)
	}
	p.stop(syscall.SIGTERM, 5*time.Second)

	lines := readLog(t, filepath.Join(dataDir, "logs", "api_access.log"))
	if want := []string{"auth-disabled | POST /v1/chat/completions | 200"}; !slices.Equal(lines, want) {
		t.Errorf("access log %q, want %q", lines, want)
	}
	p.checkStderrClean()
}

func TestServeBinaryAllowNoKeys(t *testing.T) {
	up := startUpstream(t)
	environ, dataDir := gatewayEnv(t, up, nil, map[string]string{"AUTH_ALLOW_NO_KEYS": "true"})
	p := startServe(t, environ)

	checkChatCompletion(t, p.do("POST", "/v1/chat/completions", "", chatBody))
	p.waitReady() // fail-open needs no key
	const warning = "AUTH_ALLOW_NO_KEYS=true"
	if s := p.stderr.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, warning) {
		t.Errorf("stderr has no fail-open warning at start:\n%s", s)
	}
	// The warning is repeated on every reload that still finds no key.
	p.signal(syscall.SIGHUP)
	if !p.stderr.waitFor(warning, 2, waitLimit) {
		t.Errorf("no fail-open warning after SIGHUP:\n%s", p.stderr)
	}
	checkChatCompletion(t, p.do("POST", "/v1/chat/completions", "", chatBody))

	// Once a key is configured, authentication applies.
	key := testKey(t)
	writeFileAtomic(t, filepath.Join(dataDir, "api_keys.txt"), "alice:"+key+"\n")
	p.signal(syscall.SIGHUP)
	eventually(t, "requests without a key refused once a key was configured and SIGHUP sent", func() bool {
		return p.do("GET", "/v1/models", "", "").status == http.StatusUnauthorized
	})
	checkChatCompletion(t, p.do("POST", "/v1/chat/completions", "Bearer "+key, chatBody))
	p.stop(syscall.SIGTERM, 5*time.Second)

	lines := readLog(t, filepath.Join(dataDir, "logs", "api_access.log"), key)
	if len(lines) < 4 {
		t.Fatalf("access log %q: want at least 4 lines", lines)
	}
	for _, l := range lines[:2] {
		if l != "no-keys-configured | POST /v1/chat/completions | 200" {
			t.Errorf("fail-open request logged as %q", l)
		}
	}
	if l := lines[len(lines)-1]; l != "alice | POST /v1/chat/completions | 200" {
		t.Errorf("last line %q, want alice's request", l)
	}
	p.checkStderrClean(key)
}

func TestDemoBinary(t *testing.T) {
	p := startListening(t, func(addr string) ([]string, map[string]string) {
		return []string{"demo", "--listen", addr}, map[string]string{"TMPDIR": t.TempDir()}
	})
	if !p.stdout.waitFor("Press Ctrl-C", 1, waitLimit) {
		t.Fatalf("demo did not print its instructions:\n%s", p.stdout)
	}
	out := p.stdout.String()
	key := regexp.MustCompile(`sk-[A-Za-z0-9_-]{43}`).FindString(out)
	if key == "" {
		t.Fatalf("no key in the demo's output:\n%s", out)
	}
	m := regexp.MustCompile(`curl -s (http://\S+)/v1/chat/completions -H "Authorization: Bearer ` + regexp.QuoteMeta(key) + `"`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no curl command with the key in the demo's output:\n%s", out)
	}
	if m[1] != p.base {
		t.Errorf("curl command targets %s, want %s", m[1], p.base)
	}
	dataDir := regexp.MustCompile(`data dir \(removed on exit\): (\S+)`).FindStringSubmatch(out)

	base := p.base
	p.base = m[1]
	// Each of the demo's models, named as its curl commands do.
	for _, c := range []struct{ path, model string }{
		{"/v1/chat/completions", "mock-chat"},
		{"/v1/embeddings", "mock-embed"},
	} {
		body := `{"model":"` + c.model + `","messages":[{"role":"user","content":"Hello"}],"input":"Hello"}`
		if !strings.Contains(out, `"model":"`+c.model+`"`) {
			t.Errorf("no curl command names %s:\n%s", c.model, out)
		}
		r := p.do("POST", c.path, "Bearer "+key, body)
		var got struct{ Model string }
		if err := json.Unmarshal([]byte(r.body), &got); r.status != http.StatusOK || err != nil || got.Model != c.model {
			t.Errorf("demo %s with %s: %d %s", c.path, c.model, r.status, r.body)
		}
	}
	if r := p.do("POST", "/v1/chat/completions", "", chatBody); r.status != http.StatusUnauthorized {
		t.Errorf("demo without a key: %d, want 401", r.status)
	}
	p.base = base

	p.stop(syscall.SIGINT, 5*time.Second)
	if dataDir != nil {
		if _, err := os.Stat(dataDir[1]); !os.IsNotExist(err) {
			t.Errorf("demo data dir %s still exists after exit (err %v)", dataDir[1], err)
		}
	} else {
		t.Errorf("the demo's output does not name its data dir:\n%s", out)
	}
	p.checkStderrClean(key)
}

// TestServeBinaryAdminListener: ADMIN_ADDR serves /metrics and /limits
// (docs/operations.md#admin-and-metrics) beside the public listener, without a key in either, and pprof
// on loopback; ADMIN_ADDR set but empty starts none.
func TestServeBinaryAdminListener(t *testing.T) {
	up := startUpstream(t)
	key := testKey(t)
	keys := "alice:" + key + "\n"
	adminAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	environ, _ := gatewayEnv(t, up, &keys, map[string]string{"ADMIN_ADDR": adminAddr})
	p := startServe(t, environ)
	p.waitReady()
	checkChatCompletion(t, p.do("POST", "/v1/chat/completions", "Bearer "+key, chatBody))
	const unknown = "sk-not-a-real-key-0000"
	if r := p.do("POST", "/v1/chat/completions", "Bearer "+unknown, chatBody); r.status != http.StatusUnauthorized {
		t.Fatalf("unknown key: status %d, want 401", r.status)
	}
	get := func(path string) string {
		t.Helper()
		resp, err := p.hc.Get("http://" + adminAddr + path)
		if err != nil {
			t.Fatalf("GET %s on the admin listener: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s on the admin listener: %d %v", path, resp.StatusCode, err)
		}
		if strings.Contains(string(b), key) || strings.Contains(string(b), unknown) {
			t.Errorf("GET %s shows a key:\n%s", path, b)
		}
		return string(b)
	}
	metrics := get("/metrics")
	for _, want := range []string{
		`authgate_requests_total{key_id="alice",code="200"} 1` + "\n",
		`authgate_requests_total{key_id="-",code="401"} 1` + "\n",
		`authgate_unauthorized_total{reason="unknown"} 1` + "\n",
		`authgate_upstream_healthy{upstream="` + up.url + `"} 1` + "\n",
		"authgate_keys_loaded 1\n",
		"authgate_request_duration_seconds_count 2\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	if got, want := get("/limits"), `{"alice":{"requests_last_minute":1,"rate_limit":100000,"in_flight":0}}`+"\n"; got != want {
		t.Errorf("/limits = %q, want %q", got, want)
	}
	if !p.stderr.waitFor("admin listener serving", 1, waitLimit) || !strings.Contains(p.stderr.String(), "listen="+adminAddr) {
		t.Errorf("stderr does not log the admin listener's address %s:\n%s", adminAddr, p.stderr)
	}
	if strings.Contains(p.stderr.String(), "ADMIN_TOKEN is unset") {
		t.Errorf("stderr warns about ADMIN_TOKEN although the admin listener is on loopback:\n%s", p.stderr)
	}
	// pprof on this loopback listener, and a rebinding Host refused.
	if code, body := p.adminGet(adminAddr, "/debug/pprof/cmdline", "", ""); code != http.StatusOK || !strings.Contains(body, "serve") {
		t.Errorf("GET /debug/pprof/cmdline: %d %q, want 200 with the command line", code, body)
	}
	if code, _ := p.adminGet(adminAddr, "/metrics", "evil.example:9090", ""); code != http.StatusForbidden {
		t.Errorf("GET /metrics, Host evil.example:9090: %d, want 403", code)
	}
	p.stop(syscall.SIGTERM, 5*time.Second)
	p.checkStderrClean(key, unknown)

	// ADMIN_ADDR= (as gatewayEnv sets it): no admin listener.
	environ, _ = gatewayEnv(t, up, &keys, nil)
	p = startServe(t, environ)
	p.stop(syscall.SIGTERM, 5*time.Second)
	if s := p.stderr.String(); strings.Contains(s, "admin listener") || strings.Contains(s, "127.0.0.1:9090") {
		t.Errorf("ADMIN_ADDR= started an admin listener:\n%s", s)
	}
}

// adminGet GETs path on the admin listener at addr with the Host host
// ("" for addr) and the Authorization header authz ("" for none), and
// returns the status and body.
func (p *proc) adminGet(addr, path, host, authz string) (int, string) {
	p.t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		p.t.Fatalf("GET %s on the admin listener: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatalf("GET %s on the admin listener: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// TestServeBinaryAdminToken: with ADMIN_TOKEN, the admin listener answers
// only requests bearing it, whatever their Host, and the token shows in no
// log line.
func TestServeBinaryAdminToken(t *testing.T) {
	up := startUpstream(t)
	key := testKey(t)
	keys := "alice:" + key + "\n"
	const token = "e2e-admin-token-0123456789"
	adminAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	environ, _ := gatewayEnv(t, up, &keys, map[string]string{"ADMIN_ADDR": adminAddr, "ADMIN_TOKEN": token})
	p := startServe(t, environ)
	for _, path := range []string{"/metrics", "/limits", "/debug/pprof/cmdline"} {
		for _, authz := range []string{"", "Bearer e2e-admin-token-012345678X", "Bearer " + token + "0", token} {
			if code, body := p.adminGet(adminAddr, path, "", authz); code != http.StatusUnauthorized || strings.Contains(body, "e2e-admin-token") {
				t.Errorf("GET %s with %q: %d %.100q, want 401 without the token", path, authz, code, body)
			}
		}
		for _, host := range []string{"", "evil.example:9090"} {
			if code, _ := p.adminGet(adminAddr, path, host, "Bearer "+token); code != http.StatusOK {
				t.Errorf("GET %s, Host %q, with the token: %d, want 200", path, host, code)
			}
		}
	}
	if !p.stderr.waitFor("admin listener serving", 1, waitLimit) || !strings.Contains(p.stderr.String(), "bearing ADMIN_TOKEN") {
		t.Errorf("stderr does not say that the admin listener requires ADMIN_TOKEN:\n%s", p.stderr)
	}
	p.stop(syscall.SIGTERM, 5*time.Second)
	p.checkStderrClean(key, token, "e2e-admin-token")
	if strings.Contains(p.stderr.String(), "ADMIN_TOKEN is unset") {
		t.Errorf("stderr warns that ADMIN_TOKEN is unset although it is set:\n%s", p.stderr)
	}
}

// TestServeBinaryAdminNotLoopbackWithoutToken: an admin listener on
// another address than loopback, without ADMIN_TOKEN, serves /metrics to
// IP-literal Hosts but not pprof, and says so with a warning at start.
func TestServeBinaryAdminNotLoopbackWithoutToken(t *testing.T) {
	ip := nonLoopbackIP(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := ln.Addr().String()
	ln.Close()
	up := startUpstream(t)
	key := testKey(t)
	keys := "alice:" + key + "\n"
	environ, _ := gatewayEnv(t, up, &keys, map[string]string{"ADMIN_ADDR": adminAddr})
	p := startServe(t, environ)
	if !p.stderr.waitFor("ADMIN_TOKEN is unset", 1, waitLimit) {
		t.Errorf("no warning that the admin listener on %s is open without ADMIN_TOKEN:\n%s", adminAddr, p.stderr)
	}
	if code, _ := p.adminGet(adminAddr, "/metrics", "", ""); code != http.StatusOK {
		t.Errorf("GET /metrics, Host %s: %d, want 200", adminAddr, code)
	}
	if code, _ := p.adminGet(adminAddr, "/metrics", "evil.example", ""); code != http.StatusForbidden {
		t.Errorf("GET /metrics, Host evil.example: %d, want 403", code)
	}
	if code, _ := p.adminGet(adminAddr, "/debug/pprof/", "", ""); code != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ on %s: %d, want 404", adminAddr, code)
	}
	p.stop(syscall.SIGTERM, 5*time.Second)
	p.checkStderrClean(key)
}

// nonLoopbackIP returns an IP address of this machine's other than a
// loopback or link-local one, IPv4 if there is one, to listen on; it skips
// the test on a machine without any.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var v6 string
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() || n.IP.IsUnspecified() {
			continue
		}
		if n.IP.To4() != nil {
			return n.IP.String()
		}
		if v6 == "" {
			v6 = n.IP.String()
		}
	}
	if v6 == "" {
		t.Skip("this machine has no IP address but loopback and link-local ones: no non-loopback listener to test")
	}
	return v6
}
