// Package keyset is the benchmark's key set: the keys the load sends, and
// filler keys so that no server's key map is trivially small, with the
// authgate keys file that holds them.
package keyset

import (
	"fmt"
	"os"
	"strings"
)

// The keys the load sends. Each server under test holds them and Fillers
// more.
const (
	Valid   = "sk-bench-valid-0123456789abcdef"   // key_id "bench", rpm 10,000,000: never refused
	Limited = "sk-bench-limited-0123456789abcdef" // key_id "limited", rpm 1: refused after its first request
	Unknown = "sk-unknown-0123456789abcdef"       // valid format, in no key set

	Fillers    = 1000
	DefaultRPM = 100 // MAX_REQUESTS_PER_MINUTE's default, the filler keys' limit
	ValidRPM   = 10_000_000
)

// Key is one key of the key set, in every server's terms.
type Key struct {
	ID, Key string
	RPM     int
}

// Keys returns the key set: the two keys the load uses and the fillers.
func Keys() []Key {
	keys := []Key{{"bench", Valid, ValidRPM}, {"limited", Limited, 1}}
	for i := range Fillers {
		keys = append(keys, Key{fmt.Sprintf("filler-%04d", i), fmt.Sprintf("sk-filler-%04d-0123456789abcdef", i), DefaultRPM})
	}
	return keys
}

// WriteAuthgate writes keys as an authgate keys file at path; a key with
// DefaultRPM has no rpm= of its own.
func WriteAuthgate(path string, keys []Key) error {
	var b strings.Builder
	b.WriteString("# written by bench/cmd/loadbench\n")
	for _, k := range keys {
		if k.RPM == DefaultRPM {
			fmt.Fprintf(&b, "%s:%s\n", k.ID, k.Key)
		} else {
			fmt.Fprintf(&b, "%s:%s rpm=%d\n", k.ID, k.Key, k.RPM)
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
