package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
)

// peerConfig fills bench/peers/*.tmpl.
type peerConfig struct {
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
	Classes      []limitClass
}

// limitClass is one nginx limit_req zone: the key_ids whose rpm it is.
type limitClass struct {
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

// writePeerMaps writes the key set as nginx's and HAProxy's map files into
// dir and fills in cfg's map paths and limit classes.
func writePeerMaps(dir string, keys []benchKey, cfg *peerConfig) (nginxMap, haproxyKeys, haproxyLimits string, err error) {
	var nm, hk, hl strings.Builder
	classes := map[int]*limitClass{}
	for _, k := range keys {
		fmt.Fprintf(&nm, "\"Bearer %s\" %s;\n", k.key, k.id)
		fmt.Fprintf(&hk, "%s %s\n", k.key, k.id)
		if k.rpm == cfg.DefaultRPM {
			continue
		}
		fmt.Fprintf(&hl, "%s %d\n", k.id, k.rpm)
		c := classes[k.rpm]
		if c == nil {
			rate, burst := nginxRate(k.rpm)
			name := "rpm" + strconv.Itoa(k.rpm)
			c = &limitClass{Name: name, Var: "$lim_" + name, Rate: rate, Burst: burst}
			classes[k.rpm] = c
		}
		c.KeyIDs = append(c.KeyIDs, k.id)
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

// renderPeerConfig renders the template at tmplPath with cfg into
// dir/name.
func renderPeerConfig(tmplPath, dir, name string, cfg peerConfig) (string, error) {
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
