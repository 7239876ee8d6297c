package auth

import (
	"crypto/sha256"
	"encoding/hex"
)

// Limits of the key and key_id formats (docs/keys-file.md#format).
const (
	// MinKeyLen is the shortest valid API key, in bytes.
	MinKeyLen = 16
	// MaxKeyLen is the longest valid API key, in bytes.
	MaxKeyLen = 128
	// MaxKeyIDLen is the longest valid key_id, in bytes. The format sets no
	// upper bound; this one keeps log lines and metric labels bounded.
	MaxKeyIDLen = 128
)

// hashedPrefix introduces a key stored as the hex SHA-256 of the plain key.
const hashedPrefix = "sha256:"

// tokenChars[c] reports whether c is in [A-Za-z0-9_-]. It is never written
// after initialisation.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	t['_'] = true
	t['-'] = true
	return t
}()

// allTokenChars reports whether every byte of b is in [A-Za-z0-9_-].
func allTokenChars[T string | []byte](b T) bool {
	for i := 0; i < len(b); i++ {
		if !tokenChars[b[i]] {
			return false
		}
	}
	return true
}

// ValidKey reports whether key has the format of an API key: 16 to 128
// bytes of [A-Za-z0-9_-]. Only ASCII letters and digits count, unlike the
// seed's str.isalnum, which also accepted non-ASCII letters.
func ValidKey(key []byte) bool {
	return len(key) >= MinKeyLen && len(key) <= MaxKeyLen && allTokenChars(key)
}

// ValidKeyID reports whether id has the format of a key_id: 1 to
// MaxKeyIDLen (128) bytes of [A-Za-z0-9_-], ASCII only, and not
// LooksLikeKey. A valid key_id needs no quoting or escaping in log lines,
// JSON or metric labels.
func ValidKeyID(id []byte) bool {
	return len(id) >= 1 && len(id) <= MaxKeyIDLen && allTokenChars(id) && !LooksLikeKey(id)
}

// LooksLikeKey reports whether a key_id would be an API key itself: a valid
// key beginning with "sk-" (any case), as keys gen makes them and OpenAI's
// keys are. Such a key_id is refused, because key_ids are printed in every
// log line, metric and 429 body: a keys-file line written the wrong way
// round ("sk-…:alice") would otherwise publish its key.
func LooksLikeKey(id []byte) bool {
	return ValidKey(id) && len(id) > 3 && (id[0]|0x20) == 's' && (id[1]|0x20) == 'k' && id[2] == '-'
}

// HashedKey returns the form of key to store in a keys file instead of the
// plain key: "sha256:" followed by the 64 lower-case hex digits of its
// SHA-256 digest. It does not check key's format.
func HashedKey(key []byte) string {
	d := sha256.Sum256(key)
	return hashedPrefix + hex.EncodeToString(d[:])
}
