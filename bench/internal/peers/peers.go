// Package peers configures nginx and HAProxy to do the gateway's job (a
// key map, a per-key limit, the proxy, an access log) from the templates in
// bench/peers/, for the benchmark's side-by-side runs.
package peers

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/authgate/authgate/bench/internal/keyset"
)

// Config fills bench/peers/*.tmpl.
type Config struct {
	Dir        string // the run's temporary directory
	Listen     string // host:port
	Upstream   string // host:port of the mock upstream
	Workers    int    // nginx worker_processes: the cores it is given
	AccessLog  string
	KeysMap    string // nginx: map entries "Bearer <key>" → key_id; HAProxy: map file <key> → key_id
	LimitsMap  string // HAProxy: map file key_id → rpm
	DefaultRPM int
	// nginx: the default limit's rate and burst, and one zone per other
	// limit.
	DefaultRate  string
	DefaultBurst int
	Classes      []LimitClass

	// Scale configures the streams-at-scale and idle-clients scenarios'
	// instances: responses passed on as they come (nginx's proxy_buffering
	// off, HAProxy's http-no-delay), GET /healthz answered 200 by the
	// proxy itself, and room for many connections: MaxConns client
	// connections (HAProxy's maxconn), NoFile open files (nginx's
	// worker_rlimit_nofile and worker_connections, HAProxy's ulimit-n).
	// False: the other scenarios' limits (8,000 and 16,384).
	Scale    bool
	MaxConns int
	NoFile   int
}

// LimitClass is one nginx limit_req zone: the key_ids whose rpm it is.
type LimitClass struct {
	Name, Var, Rate string
	Burst           int
	KeyIDs          []string
}

// nginxRate turns "rpm requests in any 60 s" into limit_req's rate and
// burst: rate rpm/60 per second with a burst of rpm-1 admits rpm at once,
// then refills at the same pace.
func nginxRate(rpm int) (rate string, burst int) {
	return strconv.Itoa(rpm) + "r/m", rpm - 1
}

// WriteMaps writes keys as nginx's and HAProxy's map files into dir,
// fills in cfg's limit classes and default rate, and returns the maps'
// paths; a key with cfg.DefaultRPM has no limit class of its own.
func WriteMaps(dir string, keys []keyset.Key, cfg *Config) (nginxMap, haproxyKeys, haproxyLimits string, err error) {
	var nm, hk, hl strings.Builder
	classes := map[int]*LimitClass{}
	for _, k := range keys {
		fmt.Fprintf(&nm, "\"Bearer %s\" %s;\n", k.Key, k.ID)
		fmt.Fprintf(&hk, "%s %s\n", k.Key, k.ID)
		if k.RPM == cfg.DefaultRPM {
			continue
		}
		fmt.Fprintf(&hl, "%s %d\n", k.ID, k.RPM)
		c := classes[k.RPM]
		if c == nil {
			rate, burst := nginxRate(k.RPM)
			name := "rpm" + strconv.Itoa(k.RPM)
			c = &LimitClass{Name: name, Var: "$lim_" + name, Rate: rate, Burst: burst}
			classes[k.RPM] = c
		}
		c.KeyIDs = append(c.KeyIDs, k.ID)
	}
	for _, rpm := range slices.Sorted(maps.Keys(classes)) {
		cfg.Classes = append(cfg.Classes, *classes[rpm])
	}
	cfg.DefaultRate, cfg.DefaultBurst = nginxRate(cfg.DefaultRPM)
	if nginxMap, err = writeFile(dir, "nginx-keys.map", nm.String()); err != nil {
		return
	}
	if haproxyKeys, err = writeFile(dir, "haproxy-keys.map", hk.String()); err != nil {
		return
	}
	haproxyLimits, err = writeFile(dir, "haproxy-limits.map", hl.String())
	return
}

// Render renders the template at tmplPath with cfg into dir/name and
// returns the file's path.
func Render(tmplPath, dir, name string, cfg Config) (string, error) {
	t, err := template.New(filepath.Base(tmplPath)).Option("missingkey=error").ParseFiles(tmplPath)
	if err != nil {
		return "", fmt.Errorf("cannot parse %s: %w", tmplPath, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, cfg); err != nil {
		return "", fmt.Errorf("cannot render %s: %w", tmplPath, err)
	}
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// writeFile writes content to dir/name and returns the path.
func writeFile(dir, name, content string) (string, error) {
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(content), 0o644)
}
