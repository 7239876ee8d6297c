package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestKeysRoundTrip is the operator's path to a keys file that holds no
// plain key: gen → hash → check → served. The plain key goes to the user;
// the file keeps only its digest.
func TestKeysRoundTrip(t *testing.T) {
	gen := runCLI(t, []string{"keys", "gen", "--id", "carol"}, nil, "")
	m := regexp.MustCompile(`^carol:(sk-[A-Za-z0-9_-]{43})\n$`).FindStringSubmatch(gen.stdout)
	if gen.code != 0 || m == nil {
		t.Fatalf("keys gen: exit %d, %q", gen.code, gen.stdout)
	}
	key := m[1]
	hash := runCLI(t, []string{"keys", "hash"}, nil, key+"\n")
	if hash.code != 0 || !regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`).MatchString(hash.stdout) {
		t.Fatalf("keys hash: exit %d, %q", hash.code, hash.stdout)
	}
	keys := "# hashed only\ncarol:" + strings.TrimSpace(hash.stdout) + " rpm=5\n"

	dir := t.TempDir()
	path := filepath.Join(dir, "api_keys.txt")
	if err := os.WriteFile(path, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	if check := runCLI(t, []string{"keys", "check", path}, nil, ""); check.code != 0 || strings.Contains(check.stdout, key) {
		t.Fatalf("keys check: exit %d, %q", check.code, check.stdout)
	}
	if strings.Contains(keys, key) {
		t.Fatal("the keys file holds the plain key")
	}

	up := startUpstream(t)
	environ, _ := gatewayEnv(t, up, &keys, nil)
	p := startServe(t, environ)
	if r := p.do("POST", "/v1/chat/completions", "Bearer "+key, chatBody); r.status != 200 {
		t.Fatalf("the generated key, stored hashed: %d %s", r.status, r.body)
	} else if r.header.Get("x-ratelimit-limit-requests") != "5" {
		t.Errorf("rpm=5 not applied: %q", r.header.Get("x-ratelimit-limit-requests"))
	}
	if r := p.do("GET", "/v1/models", "Bearer "+strings.TrimSpace(hash.stdout), ""); r.status != 401 {
		t.Fatalf("the stored digest used as a key: %d", r.status)
	}
	p.checkStderrClean(key)
}
