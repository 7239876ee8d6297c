package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The keys the load sends. Each server under test holds them and fillerKeys
// more, so that no key map is trivially small.
const (
	keyValid   = "sk-bench-valid-0123456789abcdef"   // key_id "bench", rpm 10,000,000: never refused
	keyLimited = "sk-bench-limited-0123456789abcdef" // key_id "limited", rpm 1: refused after its first request
	keyUnknown = "sk-unknown-0123456789abcdef"       // valid format, in no key set

	fillerKeys = 1000
	defaultRPM = 100 // MAX_REQUESTS_PER_MINUTE's default, the filler keys' limit
	validRPM   = 10_000_000
)

// benchKey is one key of the key set, in every server's terms.
type benchKey struct {
	id, key string
	rpm     int
}

// keySet returns the key set: the two keys the load uses and the fillers.
func keySet() []benchKey {
	keys := []benchKey{{"bench", keyValid, validRPM}, {"limited", keyLimited, 1}}
	for i := range fillerKeys {
		keys = append(keys, benchKey{fmt.Sprintf("filler-%04d", i), fmt.Sprintf("sk-filler-%04d-0123456789abcdef", i), defaultRPM})
	}
	return keys
}

// writeAuthgateKeys writes the key set as an authgate keys file.
func writeAuthgateKeys(path string, keys []benchKey) error {
	var b strings.Builder
	b.WriteString("# written by bench/cmd/loadbench\n")
	for _, k := range keys {
		if k.rpm == defaultRPM {
			fmt.Fprintf(&b, "%s:%s\n", k.id, k.key)
		} else {
			fmt.Fprintf(&b, "%s:%s rpm=%d\n", k.id, k.key, k.rpm)
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// writeFile writes content to dir/name and returns the path.
func writeFile(dir, name, content string) (string, error) {
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(content), 0o644)
}
