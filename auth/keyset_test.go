package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestKeySetLookup(t *testing.T) {
	hashedKey := "sk-hashed-0123456789"
	ks, ws := mustParse(t, "alice:"+testKey+"\nbob:"+HashedKey([]byte(hashedKey))+" rpm=9\n")
	if len(ws) != 0 {
		t.Fatalf("warnings: %v", ws)
	}
	f := func(key string, wantKeyID string) {
		t.Helper()
		id := ks.Lookup([]byte(key))
		d := sha256.Sum256([]byte(key))
		if byDigest := ks.LookupDigest(&d); byDigest != id {
			t.Fatalf("LookupDigest(%q) = %p, Lookup = %p", key, byDigest, id)
		}
		switch {
		case wantKeyID == "" && id != nil:
			t.Fatalf("Lookup(%q) = %+v, want nil", key, id)
		case wantKeyID != "" && (id == nil || id.KeyID != wantKeyID):
			t.Fatalf("Lookup(%q) = %+v, want key_id %q", key, id, wantKeyID)
		}
	}
	f(testKey, "alice")
	f(hashedKey, "bob") // stored only as its digest
	f(testKey2, "")
	f(testKey+"x", "")
	f(testKey[:len(testKey)-1], "")
	f("", "")
	f(HashedKey([]byte(hashedKey)), "") // the stored form is not a key
	if id := ks.Lookup([]byte(hashedKey)); id.Settings.RPM != 9 {
		t.Fatalf("bob's settings = %+v", id.Settings)
	}
	if ks.LookupDigest(nil) != nil {
		t.Fatalf("LookupDigest(nil) != nil")
	}
}

func TestKeySetIdentities(t *testing.T) {
	entry := func(line int, keyID, key string, rpm int) Entry {
		return Entry{Line: line, KeyID: keyID, Digest: sha256.Sum256([]byte(key)), Settings: Settings{RPM: rpm}}
	}
	ks, ws := NewKeySet([]Entry{
		entry(1, "carol", "sk-carol-0123456789", 0),
		entry(2, "alice", "sk-alice-0123456789", 50),
		entry(3, "carol", "sk-carol-9876543210", 0),
		entry(4, "bob", "sk-alice-0123456789", 0), // duplicate: bob gets no identity
		entry(5, "dave", "sk-dave-0123456789", 0),
		entry(6, "alice", "sk-alice-9876543210", 60), // conflicting: kept, first wins
	})
	if len(ws) != 2 || !errors.Is(ws[0], ErrDuplicateKey) || ws[0].Line != 4 ||
		!errors.Is(ws[1], ErrConflictingSettings) || ws[1].Line != 6 || ws[1].FirstLine != 2 || ws[1].KeyID != "alice" {
		t.Fatalf("warnings = %v", ws)
	}
	if ks.Len() != 5 || ks.NumIdentities() != 3 {
		t.Fatalf("Len = %d, NumIdentities = %d; want 5, 3", ks.Len(), ks.NumIdentities())
	}
	want := []Identity{{KeyID: "carol", Index: 0}, {KeyID: "alice", Settings: Settings{RPM: 50}, Index: 1}, {KeyID: "dave", Index: 2}}
	ids := ks.Identities()
	if len(ids) != len(want) {
		t.Fatalf("Identities = %v", ids)
	}
	for i, id := range ids {
		if *id != want[i] {
			t.Fatalf("Identities()[%d] = %+v, want %+v", i, *id, want[i])
		}
		if ks.ByKeyID(id.KeyID) != id {
			t.Fatalf("ByKeyID(%q) = %p, want %p", id.KeyID, ks.ByKeyID(id.KeyID), id)
		}
	}
	if ks.Lookup([]byte("sk-carol-9876543210")) != ids[0] || ks.Lookup([]byte("sk-alice-9876543210")) != ids[1] {
		t.Fatalf("rotated keys do not share their key_id's identity")
	}
	if ks.ByKeyID("bob") != nil {
		t.Fatalf("ByKeyID(bob) != nil, though bob's only key was a duplicate")
	}
}

func TestNewKeySetRejectsBadEntries(t *testing.T) {
	d := sha256.Sum256([]byte(testKey))
	ks, ws := NewKeySet([]Entry{
		{Line: 1, KeyID: "", Digest: d},
		{Line: 2, KeyID: "al ice", Digest: d},
		{Line: 3, KeyID: "alice", Digest: d, Settings: Settings{RPM: -1}},
		{Line: 4, KeyID: "alice", Digest: d, Settings: Settings{RPM: MaxRPM + 1}},
		{Line: 5, KeyID: "alice", Digest: d},
	})
	if ks.Len() != 1 || len(ws) != 4 ||
		!errors.Is(ws[0], ErrBadKeyID) || !errors.Is(ws[1], ErrBadKeyID) ||
		!errors.Is(ws[2], ErrBadSetting) || !errors.Is(ws[3], ErrBadSetting) {
		t.Fatalf("NewKeySet = %d keys, %v", ks.Len(), ws)
	}
}

func TestEmptyKeySets(t *testing.T) {
	f := func(name string, ks *KeySet) {
		t.Helper()
		d := sha256.Sum256([]byte(testKey))
		if ks.Lookup([]byte(testKey)) != nil || ks.LookupDigest(&d) != nil || ks.ByKeyID("alice") != nil ||
			ks.Len() != 0 || ks.NumIdentities() != 0 || len(ks.Identities()) != 0 {
			t.Fatalf("%s key set is not empty", name)
		}
	}
	f("nil", nil)
	f("zero", &KeySet{})
	empty, ws := NewKeySet(nil)
	if empty == nil || ws != nil {
		t.Fatalf("NewKeySet(nil) = %v, %v", empty, ws)
	}
	f("NewKeySet(nil)", empty)
	parsed, _ := mustParse(t, "# nothing\n")
	f("parsed", parsed)
}

func TestKeySetManyKeys(t *testing.T) {
	const n = 5000
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = Entry{Line: i + 1, KeyID: fmt.Sprintf("id%d", i%100), Digest: sha256.Sum256(fmt.Appendf(nil, "sk-many-%012d", i))}
	}
	ks, ws := NewKeySet(entries)
	if ks.Len() != n || ks.NumIdentities() != 100 || len(ws) != 0 {
		t.Fatalf("Len = %d, NumIdentities = %d, warnings %v", ks.Len(), ks.NumIdentities(), ws)
	}
	// Concurrent readers, for the race detector.
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 4 {
				id := ks.Lookup(fmt.Appendf(nil, "sk-many-%012d", i))
				if id == nil || id.KeyID != fmt.Sprintf("id%d", i%100) || ks.Identities()[id.Index] != id {
					t.Errorf("key %d: identity %+v", i, id)
					return
				}
			}
		}()
	}
	wg.Wait()
}
