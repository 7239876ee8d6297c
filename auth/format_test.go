package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestValidKey(t *testing.T) {
	f := func(key string, want bool) {
		t.Helper()
		if got := ValidKey([]byte(key)); got != want {
			t.Fatalf("ValidKey(%q) = %v, want %v", key, got, want)
		}
	}
	f("", false)
	f(strings.Repeat("a", 15), false)
	f(strings.Repeat("a", 16), true)
	f(strings.Repeat("Z", 128), true)
	f(strings.Repeat("9", 129), false)
	f("sk-ABC_def-0123456789", true)
	f("-_-_-_-_-_-_-_-_", true)
	f("sk-abcdefghijklm!", false)
	f("sk-abcdefghijklm n", false)
	f("sk-abcdefghijklm.", false)
	f("sk-abcdefghijklm:", false)
	f("sk-abcdefghijklmé", false) // the seed's isalnum accepted it
	f("sk-abcdefghijklm\x00", false)
	f("sk-abcdefghijklm\xff", false)
	f("sk-abcdefghijklm\n", false)
}

func TestValidKeyID(t *testing.T) {
	f := func(id string, want bool) {
		t.Helper()
		if got := ValidKeyID([]byte(id)); got != want {
			t.Fatalf("ValidKeyID(%q) = %v, want %v", id, got, want)
		}
	}
	f("", false)
	f("a", true)
	f("alice-laptop_2", true)
	f("ALICE", true)
	f(strings.Repeat("a", 128), true)
	f(strings.Repeat("a", 129), false)
	f("al ice", false)
	f("alice:", false)
	f("alice.x", false)
	f("alicé", false)
	f("ａlice", false) // full-width letter
}

func TestHashedKey(t *testing.T) {
	key := []byte("sk-hashed-0123456789")
	d := sha256.Sum256(key)
	want := "sha256:" + hex.EncodeToString(d[:])
	if got := HashedKey(key); got != want {
		t.Fatalf("HashedKey = %q, want %q", got, want)
	}
	e, ok, err := ParseLine([]byte("alice:"+HashedKey(key)), 1)
	if !ok || err != nil || !e.Hashed || e.Digest != d {
		t.Fatalf("ParseLine(HashedKey) = %+v, %v, %v; want the key's digest", e, ok, err)
	}
}
