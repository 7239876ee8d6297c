package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// refKeyField returns the api_key field of a keys file line, computed
// independently of ParseLine: the first whitespace-separated field after
// the first ':', and the key_id before it.
func refKeyField(line []byte) (keyID, field string) {
	isSpace := func(r rune) bool { return strings.ContainsRune(" \t\r\n\v\f", r) }
	before, after, ok := strings.Cut(string(line), ":")
	if !ok {
		return "", ""
	}
	keyID = strings.TrimFunc(before, isSpace)
	if fields := strings.FieldsFunc(after, isSpace); len(fields) > 0 {
		field = fields[0]
	}
	return keyID, field
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte("alice:" + testKey))
	f.Add([]byte("alice:" + testKey + " rpm=600"))
	f.Add([]byte("alice:sha256:" + hexDigest(testKey)))
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := bytes.Clone(line)
		e, ok, err := ParseLine(line, 1)
		if !bytes.Equal(line, orig) {
			t.Fatalf("ParseLine modified its input")
		}
		keyID, field := refKeyField(line)
		if ok {
			if err != nil {
				t.Fatalf("ok with error %v", err)
			}
			if !ValidKeyID([]byte(e.KeyID)) || e.KeyID != keyID || e.Line != 1 {
				t.Fatalf("entry %+v: bad key_id, want %q", e, keyID)
			}
			if e.Hashed {
				h, isHashed := strings.CutPrefix(field, "sha256:")
				d, herr := hex.DecodeString(h)
				if !isHashed || herr != nil || !bytes.Equal(d, e.Digest[:]) {
					t.Fatalf("hashed entry %+v from field %q", e, field)
				}
			} else if !ValidKey([]byte(field)) || e.Digest != sha256.Sum256([]byte(field)) {
				t.Fatalf("plain entry %+v: digest is not that of field %q", e, field)
			}
			if e.Settings.RPM < 0 || e.Settings.RPM > MaxRPM {
				t.Fatalf("entry %+v: rpm out of range", e)
			}
			return
		}
		if e != (Entry{}) {
			t.Fatalf("not ok, but entry %+v", e)
		}
		if err == nil {
			return
		}
		var le *LineError
		if !errors.As(err, &le) || le.Line != 1 {
			t.Fatalf("error %#v is not a *LineError for line 1", err)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "line 1: ") {
			t.Fatalf("error %q lacks the line number", msg)
		}
		// The key_id is public and may be named; the key never.
		if ValidKeyID([]byte(keyID)) {
			msg = strings.ReplaceAll(msg, strconv.Quote(keyID), `""`)
		}
		if len(field) >= MinKeyLen && strings.Contains(msg, field) {
			t.Fatalf("error %q shows the key field %q", err, field)
		}
	})
}

// refParseAuthorization is a plain restatement of docs/http.md#authentication to compare
// ParseAuthorization with.
func refParseAuthorization(h string) (string, Reason) {
	v := strings.Trim(h, " \t")
	if v == "" {
		return "", ReasonMissing
	}
	if len(v) >= 6 && strings.EqualFold(v[:6], "bearer") && (len(v) == 6 || v[6] == ' ' || v[6] == '\t') {
		v = strings.Trim(v[6:], " \t")
		if v == "" {
			return "", ReasonEmpty
		}
	}
	if len(v) < 16 || len(v) > 128 || strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
		return "", ReasonBadFormat
	}
	return v, ReasonOK
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add([]byte("Bearer " + testKey))
	f.Add([]byte("bearer\t"))
	f.Add([]byte(testKey))
	f.Fuzz(func(t *testing.T, h []byte) {
		key, r := ParseAuthorization(h)
		wantKey, wantReason := refParseAuthorization(string(h))
		if r != wantReason || string(key) != wantKey {
			t.Fatalf("ParseAuthorization(%q) = %q, %v; want %q, %v", h, key, r, wantKey, wantReason)
		}
		if r != ReasonOK {
			if key != nil {
				t.Fatalf("reason %v with key %q", r, key)
			}
			return
		}
		if !ValidKey(key) {
			t.Fatalf("OK with invalid key %q", key)
		}
		// key must be a subslice of h.
		off := cap(h) - cap(key)
		if off < 0 || off+len(key) > len(h) || &h[off] != &key[0] {
			t.Fatalf("key %q is not a subslice of %q", key, h)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("\xef\xbb\xbf# keys\r\nalice:" + testKey + " rpm=5\r\nbob:" + testKey + "\nbad\n"))
	f.Add([]byte("alice:" + testKey + "\nalice:sha256:" + hexDigest(testKey2) + " rpm=3"))
	f.Fuzz(func(t *testing.T, file []byte) {
		ks, ws, err := Parse(bytes.NewReader(file))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		lines := bytes.Count(file, []byte("\n")) + 1
		if ks.Len() > lines || ks.NumIdentities() > ks.Len() {
			t.Fatalf("%d keys, %d identities from %d lines", ks.Len(), ks.NumIdentities(), lines)
		}
		for i, id := range ks.Identities() {
			if id.Index != i || ks.ByKeyID(id.KeyID) != id || !ValidKeyID([]byte(id.KeyID)) {
				t.Fatalf("identity %d: %+v", i, id)
			}
		}
		for i, w := range ws {
			if w.Line < 1 || w.Line > lines || (i > 0 && w.Line <= ws[i-1].Line) || w.Err == nil {
				t.Fatalf("warning %d: %v (of %d lines)", i, w, lines)
			}
		}
	})
}
