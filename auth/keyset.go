package auth

import "crypto/sha256"

// Identity is what a key authenticates as: its key_id and the key_id's
// settings. All keys of one key_id share one Identity (docs/keys-file.md#format), hence one
// limit and one log identity.
//
// An Identity belongs to its [KeySet] and must not be modified.
type Identity struct {
	// KeyID is the key_id; [ValidKeyID] holds.
	KeyID string
	// Settings are those of the key_id's first entry. Later entries of the
	// same key_id may omit settings; if they give different ones they are
	// still accepted, with these settings, and warned about
	// (ErrConflictingSettings).
	Settings Settings
	// Index is dense, 0..NumIdentities()-1, in order of the key_id's first
	// accepted entry; it is meant to index per-snapshot side tables. It is
	// stable within one KeySet only: a reload may renumber.
	Index int
}

// numShards is the number of maps a KeySet is split into, by the first
// byte of the digest. It is a power of two.
const numShards = 64

// slot is a KeySet's value for one key.
type slot struct {
	id   *Identity
	line int // of the entry, for duplicate warnings
}

// KeySet is an immutable set of API keys, held as SHA-256 digests, each
// mapped to its [Identity].
//
// It is safe for concurrent use without locks, and never changes after
// construction: to change keys, build a new KeySet and swap the pointer
// (for example with atomic.Pointer). The zero value and a nil *KeySet are
// empty key sets. Build one with [Load], [Parse] or [NewKeySet].
type KeySet struct {
	// shards[d[0]%numShards] maps the digests d of keys to their slots.
	shards     [numShards]map[[32]byte]slot
	identities []*Identity
	byKeyID    map[string]*Identity
	n          int
}

// NewKeySet builds a KeySet from entries, in order; it does not keep
// entries. The first entry of a digest wins: later entries with the same
// digest are skipped with an ErrDuplicateKey warning naming both key_ids.
// Entries with an invalid KeyID (ErrBadKeyID) or Settings out of range
// (ErrBadSetting) are skipped with a warning too; an entry whose settings
// conflict with its key_id's first entry is kept, with a warning
// (ErrConflictingSettings). Warnings are in the order of entries.
func NewKeySet(entries []Entry) (*KeySet, []*LineError) {
	var counts [numShards]int
	for i := range entries {
		counts[entries[i].Digest[0]%numShards]++
	}
	b := newKeySetBuilder(&counts)
	for i := range entries {
		b.add(&entries[i])
	}
	return b.ks, b.warnings
}

// keySetBuilder builds a KeySet one entry at a time.
type keySetBuilder struct {
	ks         *KeySet
	warnings   []*LineError
	firstLines []int      // by Identity.Index
	chunk      []Identity // Identities are allocated in chunks
}

// newKeySetBuilder returns a builder for an empty KeySet; sizes, if not nil,
// are the expected numbers of keys in each shard.
func newKeySetBuilder(sizes *[numShards]int) *keySetBuilder {
	ks := &KeySet{byKeyID: make(map[string]*Identity)}
	for i := range ks.shards {
		n := 0
		if sizes != nil {
			n = sizes[i]
		}
		ks.shards[i] = make(map[[32]byte]slot, n)
	}
	return &keySetBuilder{ks: ks}
}

// warn records a warning.
func (b *keySetBuilder) warn(w *LineError) {
	b.warnings = append(b.warnings, w)
}

// add adds e to the KeySet, or records why not.
func (b *keySetBuilder) add(e *Entry) {
	ks := b.ks
	switch {
	case len(e.KeyID) == 0 || len(e.KeyID) > MaxKeyIDLen || !allTokenChars(e.KeyID):
		b.warn(&LineError{Line: e.Line, Err: ErrBadKeyID})
		return
	case !e.Settings.valid():
		b.warn(&LineError{Line: e.Line, Err: ErrBadSetting})
		return
	}
	shard := ks.shards[e.Digest[0]%numShards]
	if first, dup := shard[e.Digest]; dup {
		b.warn(&LineError{
			Line:       e.Line,
			Err:        ErrDuplicateKey,
			KeyID:      e.KeyID,
			FirstKeyID: first.id.KeyID,
			FirstLine:  first.line,
		})
		return
	}
	id := ks.byKeyID[e.KeyID]
	if id == nil {
		if len(b.chunk) == cap(b.chunk) {
			// Appending within capacity keeps earlier pointers valid.
			b.chunk = make([]Identity, 0, min(max(2*cap(b.chunk), 8), 1024))
		}
		b.chunk = append(b.chunk, Identity{KeyID: e.KeyID, Settings: e.Settings, Index: len(ks.identities)})
		id = &b.chunk[len(b.chunk)-1]
		ks.byKeyID[e.KeyID] = id
		ks.identities = append(ks.identities, id)
		b.firstLines = append(b.firstLines, e.Line)
	} else if e.Settings != (Settings{}) && e.Settings != id.Settings {
		b.warn(&LineError{
			Line:      e.Line,
			Err:       ErrConflictingSettings,
			KeyID:     e.KeyID,
			FirstLine: b.firstLines[id.Index],
		})
	}
	shard[e.Digest] = slot{id: id, line: e.Line}
	ks.n++
}

// Lookup returns the Identity of key, or nil if ks does not hold it. It
// hashes key with SHA-256 and looks the digest up: plain keys are never
// compared, so its timing tells nothing about how close key is to a stored
// key. It does not check key's format (see [ValidKey]), does not allocate,
// and does not keep key.
func (ks *KeySet) Lookup(key []byte) *Identity {
	d := sha256.Sum256(key)
	return ks.LookupDigest(&d)
}

// LookupDigest returns the Identity of the key whose SHA-256 digest is *d,
// or nil if ks does not hold it (or d is nil).
func (ks *KeySet) LookupDigest(d *[32]byte) *Identity {
	if ks == nil || d == nil {
		return nil
	}
	return ks.shards[d[0]%numShards][*d].id
}

// ByKeyID returns the Identity of keyID, or nil if ks holds no key for it.
func (ks *KeySet) ByKeyID(keyID string) *Identity {
	if ks == nil {
		return nil
	}
	return ks.byKeyID[keyID]
}

// Len returns the number of keys in ks.
func (ks *KeySet) Len() int {
	if ks == nil {
		return 0
	}
	return ks.n
}

// NumIdentities returns the number of distinct key_ids in ks.
func (ks *KeySet) NumIdentities() int {
	if ks == nil {
		return 0
	}
	return len(ks.identities)
}

// Identities returns every Identity of ks, ordered by Index. The slice and
// the Identities belong to ks: the caller must not modify them.
func (ks *KeySet) Identities() []*Identity {
	if ks == nil {
		return nil
	}
	return ks.identities
}
