package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

const (
	testKey  = "sk-test-0123456789abcdef"
	testKey2 = "sk-other-0123456789abcdef"
)

// hexDigest returns the lower-case hex SHA-256 of key.
func hexDigest(key string) string {
	d := sha256.Sum256([]byte(key))
	return hex.EncodeToString(d[:])
}

func TestParseLineOK(t *testing.T) {
	f := func(line, keyID, key string, hashed bool, rpm int) {
		t.Helper()
		e, ok, err := ParseLine([]byte(line), 7)
		if !ok || err != nil {
			t.Fatalf("ParseLine(%q) = ok %v, err %v; want an entry", line, ok, err)
		}
		want := Entry{Line: 7, KeyID: keyID, Digest: sha256.Sum256([]byte(key)), Hashed: hashed, Settings: Settings{RPM: rpm}}
		if e != want {
			t.Fatalf("ParseLine(%q) = %+v, want %+v", line, e, want)
		}
	}
	f("alice:"+testKey, "alice", testKey, false, 0)
	f("  alice  :  "+testKey+"  ", "alice", testKey, false, 0)
	f("\talice\t:\t"+testKey+"\t", "alice", testKey, false, 0)
	f("alice:"+testKey+"\n", "alice", testKey, false, 0)
	f("alice:"+testKey+"\r\n", "alice", testKey, false, 0)
	f("alice-laptop_2:"+testKey, "alice-laptop_2", testKey, false, 0)
	f(strings.Repeat("i", 128)+":"+testKey, strings.Repeat("i", 128), testKey, false, 0)
	f("a:"+strings.Repeat("k", 16), "a", strings.Repeat("k", 16), false, 0)
	f("a:"+strings.Repeat("k", 128), "a", strings.Repeat("k", 128), false, 0)
	f("a:-_-_-_-_-_-_-_-_", "a", "-_-_-_-_-_-_-_-_", false, 0)
	f("a:0123456789ABCDEFabcdef", "a", "0123456789ABCDEFabcdef", false, 0)

	// sha256:<hex>, either case: the digest is decoded, not computed.
	f("alice:sha256:"+hexDigest(testKey), "alice", testKey, true, 0)
	f("alice:sha256:"+strings.ToUpper(hexDigest(testKey)), "alice", testKey, true, 0)
	f("alice: sha256:"+hexDigest(testKey)+" rpm=5", "alice", testKey, true, 5)

	// Settings.
	f("alice:"+testKey+" rpm=600", "alice", testKey, false, 600)
	f("alice:"+testKey+"\t rpm=600 \t", "alice", testKey, false, 600)
	f("alice:"+testKey+" rpm=1", "alice", testKey, false, 1)
	f("alice:"+testKey+" rpm=10000000", "alice", testKey, false, 10_000_000)
	f("alice:"+testKey+" rpm=0600", "alice", testKey, false, 600)

	// A line at the length limit.
	line := "alice:" + testKey + " rpm=9"
	f(line+strings.Repeat(" ", MaxLineLen-len(line)), "alice", testKey, false, 9)
	f(line+strings.Repeat(" ", MaxLineLen-len(line))+"\r\n", "alice", testKey, false, 9)
}

func TestParseLineSkipped(t *testing.T) {
	f := func(line string) {
		t.Helper()
		e, ok, err := ParseLine([]byte(line), 1)
		if ok || err != nil || e != (Entry{}) {
			t.Fatalf("ParseLine(%q) = %+v, %v, %v; want a skipped line", line, e, ok, err)
		}
	}
	f("")
	f(" ")
	f("\t \r\n")
	f("\n")
	f("#")
	f("# alice:" + testKey)
	f("#alice:" + testKey)
	f("   \t# indented comment")
	f("#" + strings.Repeat("x", 2*MaxLineLen)) // comments may be long
}

func TestParseLineErrors(t *testing.T) {
	f := func(line string, want error) {
		t.Helper()
		e, ok, err := ParseLine([]byte(line), 3)
		if ok || e != (Entry{}) {
			t.Fatalf("ParseLine(%q) = %+v, ok; want error %v", line, e, want)
		}
		if !errors.Is(err, want) {
			t.Fatalf("ParseLine(%q) error = %v; want %v", line, err, want)
		}
		var le *LineError
		if !errors.As(err, &le) || le.Line != 3 {
			t.Fatalf("ParseLine(%q) error = %#v; want a *LineError for line 3", line, err)
		}
		if !strings.HasPrefix(err.Error(), "line 3: ") {
			t.Fatalf("ParseLine(%q) error %q does not start with the line number", line, err)
		}
	}
	// Missing ':'.
	f("alice", ErrMissingColon)
	f("alice "+testKey, ErrMissingColon)
	f(testKey, ErrMissingColon)

	// Bad key_id.
	f(":"+testKey, ErrBadKeyID)
	f("  :"+testKey, ErrBadKeyID)
	f("al ice:"+testKey, ErrBadKeyID)
	// A swapped line: the key would be logged as the key_id.
	f(testKey+":alice", ErrBadKeyID)
	f("SK-"+testKey[3:]+":"+testKey, ErrBadKeyID)
	if _, _, err := ParseLine([]byte(testKey+":alice-0123456789abcdef"), 1); err == nil ||
		strings.Contains(err.Error(), testKey) || !strings.Contains(err.Error(), "wrong way round") {
		t.Fatalf("swapped line: %v", err)
	}
	if e, ok, err := ParseLine([]byte("sk-team:"+testKey), 1); err != nil || !ok || e.KeyID != "sk-team" {
		t.Fatalf("a short key_id beginning with sk- (not a key): %+v %v %v", e, ok, err)
	}
	f("al.ice:"+testKey, ErrBadKeyID)
	f("alicé:"+testKey, ErrBadKeyID)
	f(strings.Repeat("i", 129)+":"+testKey, ErrBadKeyID)
	f("\xef\xbb\xbfalice:"+testKey, ErrBadKeyID) // a BOM is only skipped by Parse, at the start

	// Bad key; the line is split at the first ':' only.
	f("alice:", ErrBadKey)
	f("alice:   ", ErrBadKey)
	f("alice:   rpm=5", ErrBadKey)
	f("alice:"+strings.Repeat("k", 15), ErrBadKey)
	f("alice:"+strings.Repeat("k", 129), ErrBadKey)
	f("alice:"+testKey+"!", ErrBadKey)
	f("alice:sk-tést-0123456789abcdef", ErrBadKey)
	f("alice:sk-test:0123456789abcdef", ErrBadKey)
	f("al:ice:"+testKey, ErrBadKey)
	f("alice:sha256:", ErrBadKey)
	f("alice:sha256:"+hexDigest(testKey)[:63], ErrBadKey)
	f("alice:sha256:"+hexDigest(testKey)+"0", ErrBadKey)
	f("alice:sha256:"+strings.Repeat("g", 64), ErrBadKey)
	f("alice:sha256: "+hexDigest(testKey), ErrBadKey)
	f("alice:SHA256:"+hexDigest(testKey), ErrBadKey)
	f("alice:sha512:"+hexDigest(testKey), ErrBadKey)

	// Bad settings.
	f("alice:"+testKey+" rpm=0", ErrBadSetting)
	f("alice:"+testKey+" rpm=abc", ErrBadSetting)
	f("alice:"+testKey+" rpm=", ErrBadSetting)
	f("alice:"+testKey+" rpm=-1", ErrBadSetting)
	f("alice:"+testKey+" rpm=+5", ErrBadSetting)
	f("alice:"+testKey+" rpm=5.0", ErrBadSetting)
	f("alice:"+testKey+" rpm=10000001", ErrBadSetting)
	f("alice:"+testKey+" rpm=99999999999999999999999", ErrBadSetting)
	f("alice:"+testKey+" rpm=5 rpm=5", ErrBadSetting)
	f("alice:"+testKey+" rpm=5 rpm=6", ErrBadSetting)
	f("alice:"+testKey+" rpm", ErrBadSetting)
	f("alice:"+testKey+" RPM=5", ErrBadSetting)
	f("alice:"+testKey+" unknown=1", ErrBadSetting)
	f("alice:"+testKey+" =5", ErrBadSetting)
	f("alice:"+testKey+" rpm =5", ErrBadSetting)
	f("alice:"+testKey+" rpm= 5", ErrBadSetting)
	f("alice:"+testKey+" "+testKey2, ErrBadSetting)

	// Too long.
	line := "alice:" + testKey
	f(line+strings.Repeat(" ", MaxLineLen+1-len(line)), ErrLineTooLong)
	f(line+" "+strings.Repeat("x", 10*MaxLineLen), ErrLineTooLong)
}

func TestLineErrorMessage(t *testing.T) {
	f := func(line string, want string) {
		t.Helper()
		_, _, err := ParseLine([]byte(line), 3)
		if err == nil {
			t.Fatalf("ParseLine(%q): no error, want %q", line, want)
		}
		if err.Error() != want {
			t.Fatalf("ParseLine(%q) error:\ngot  %s\nwant %s", line, err, want)
		}
	}
	f("alice "+testKey, `line 3: missing ':'`)
	f("al ice:"+testKey, `line 3: bad key_id: want 1 to 128 of [A-Za-z0-9_-]`)
	f("alice:", `line 3: bad key format for key_id "alice": no key`)
	f("alice:sk-short", `line 3: bad key format for key_id "alice": shorter than 16 bytes`)
	f("alice:"+strings.Repeat("k", 129), `line 3: bad key format for key_id "alice": longer than 128 bytes`)
	f("alice:"+testKey+"!", `line 3: bad key format for key_id "alice": characters outside [A-Za-z0-9_-]`)
	f("alice:sha256:abc", `line 3: bad key format for key_id "alice": sha256: must be followed by 64 hex digits`)
	f("alice:"+testKey+" rpm=0", `line 3: bad setting "rpm" for key_id "alice": want an integer from 1 to 10000000`)
	f("alice:"+testKey+" rpm=1 rpm=1", `line 3: bad setting "rpm" for key_id "alice": given twice`)
	f("alice:"+testKey+" rpm", `line 3: bad setting "rpm" for key_id "alice": missing '=' (want name=value)`)
	f("alice:"+testKey+" tpx=a", `line 3: bad setting "tpx" for key_id "alice": unknown setting (known: rpm, models, expires, concurrency, tpm, tpd)`)
	f("alice:"+testKey+" "+testKey2, `line 3: bad setting for key_id "alice": a setting without '=' (want name=value)`)
	f("alice:"+testKey+" "+testKey2+"=1", `line 3: bad setting for key_id "alice": unknown setting (known: rpm, models, expires, concurrency, tpm, tpd)`)
	f("alice:"+testKey+strings.Repeat(" ", MaxLineLen), `line 3: line too long (over 4096 bytes)`)

	le := &LineError{Line: 7, Err: ErrDuplicateKey, KeyID: "bob", FirstKeyID: "alice", FirstLine: 2}
	if got, want := le.Error(), `line 7: duplicate key for key_id "bob" (already used by key_id "alice" on line 2)`; got != want {
		t.Fatalf("duplicate: got %s, want %s", got, want)
	}
	le = &LineError{Line: 9, Err: ErrConflictingSettings, KeyID: "alice", FirstLine: 2}
	if got, want := le.Error(), `line 9: settings for key_id "alice" differ from its first entry on line 2, whose settings apply`; got != want {
		t.Fatalf("conflict: got %s, want %s", got, want)
	}
	if got, want := (&LineError{Line: 1}).Error(), "line 1: invalid"; got != want {
		t.Fatalf("nil Err: got %s, want %s", got, want)
	}
}

// warning is a LineError reduced to what tests compare.
type warning struct {
	line int
	err  error
}

func warningsOf(ws []*LineError) []warning {
	var out []warning
	for _, w := range ws {
		for _, sentinel := range []error{ErrMissingColon, ErrBadKeyID, ErrBadKey, ErrBadSetting, ErrDuplicateKey, ErrConflictingSettings, ErrLineTooLong} {
			if errors.Is(w, sentinel) {
				out = append(out, warning{w.Line, sentinel})
			}
		}
	}
	return out
}

// mustParse parses file, failing the test on a read error.
func mustParse(t *testing.T, file string) (*KeySet, []*LineError) {
	t.Helper()
	ks, ws, err := Parse(strings.NewReader(file))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return ks, ws
}

func TestParse(t *testing.T) {
	f := func(file string, wantKeys map[string]string, wantWarnings ...warning) {
		t.Helper()
		ks, ws := mustParse(t, file)
		if ks.Len() != len(wantKeys) {
			t.Fatalf("Parse(%q): Len = %d, want %d", file, ks.Len(), len(wantKeys))
		}
		for key, keyID := range wantKeys {
			id := ks.Lookup([]byte(key))
			if id == nil || id.KeyID != keyID {
				t.Fatalf("Parse(%q): Lookup(%q) = %+v, want key_id %q", file, key, id, keyID)
			}
		}
		got := warningsOf(ws)
		if len(got) != len(wantWarnings) || len(ws) != len(wantWarnings) {
			t.Fatalf("Parse(%q): warnings %v, want %v", file, ws, wantWarnings)
		}
		for i := range got {
			if got[i] != wantWarnings[i] {
				t.Fatalf("Parse(%q): warning %d = %v, want %v", file, i, ws[i], wantWarnings[i])
			}
		}
	}
	k := func(i int) string { return "sk-key" + strings.Repeat("0", 12) + string(rune('a'+i)) }

	f("", nil)
	f("\n\n\r\n", nil)
	f("# only a comment\n", nil)
	f("alice:"+k(0), map[string]string{k(0): "alice"})
	f("alice:"+k(0)+"\n", map[string]string{k(0): "alice"})
	f("alice:"+k(0)+"\r\nbob:"+k(1)+"\r\n", map[string]string{k(0): "alice", k(1): "bob"})
	f("alice:"+k(0)+"\r\nbob:"+k(1), map[string]string{k(0): "alice", k(1): "bob"})
	f("\xef\xbb\xbfalice:"+k(0)+"\n", map[string]string{k(0): "alice"})
	f("\xef\xbb\xbf# comment\nalice:"+k(0)+"\n", map[string]string{k(0): "alice"})
	f("alice:"+k(0)+"\n\xef\xbb\xbfbob:"+k(1)+"\n", map[string]string{k(0): "alice"}, warning{2, ErrBadKeyID})

	// The seed's example, with keys long enough, and comments.
	f(`# production keys
production:`+k(0)+`

  # laptops
alice-laptop:`+k(1)+`
development:`+k(2)+`
`, map[string]string{k(0): "production", k(1): "alice-laptop", k(2): "development"})

	// Bad lines are skipped, the rest loaded; warnings in line order.
	f("alice:"+k(0)+"\nbad line\nbob:\ncarol:"+k(2)+" rpm=0\n:"+k(3)+"\ndave:"+k(4)+"\n",
		map[string]string{k(0): "alice", k(4): "dave"},
		warning{2, ErrMissingColon}, warning{3, ErrBadKey}, warning{4, ErrBadSetting}, warning{5, ErrBadKeyID})

	// Duplicates: the first wins, within and across key_ids.
	f("alice:"+k(0)+"\nalice:"+k(0)+"\n", map[string]string{k(0): "alice"}, warning{2, ErrDuplicateKey})
	f("alice:"+k(0)+"\nbob:"+k(0)+"\n", map[string]string{k(0): "alice"}, warning{2, ErrDuplicateKey})
	f("bad\nalice:"+k(0)+"\nbob:"+k(0)+"\nbad\n", map[string]string{k(0): "alice"},
		warning{1, ErrMissingColon}, warning{3, ErrDuplicateKey}, warning{4, ErrMissingColon})
	// A plain key and its sha256: form are the same key, either way round.
	f("alice:"+k(0)+"\nbob:sha256:"+hexDigest(k(0))+"\n", map[string]string{k(0): "alice"}, warning{2, ErrDuplicateKey})
	f("alice:sha256:"+strings.ToUpper(hexDigest(k(0)))+"\nbob:"+k(0)+"\n", map[string]string{k(0): "alice"}, warning{2, ErrDuplicateKey})

	// Several keys share one key_id; settings conflicting with the first
	// entry's are warned about, but the key is kept.
	f("alice:"+k(0)+"\nalice:"+k(1)+"\n", map[string]string{k(0): "alice", k(1): "alice"})
	f("alice:"+k(0)+" rpm=5\nalice:"+k(1)+"\nalice:"+k(2)+" rpm=5\n", map[string]string{k(0): "alice", k(1): "alice", k(2): "alice"})
	f("alice:"+k(0)+" rpm=5\nalice:"+k(1)+" rpm=6\n", map[string]string{k(0): "alice", k(1): "alice"}, warning{2, ErrConflictingSettings})
	f("alice:"+k(0)+"\nalice:"+k(1)+" rpm=6\n", map[string]string{k(0): "alice", k(1): "alice"}, warning{2, ErrConflictingSettings})

	// Long lines are reported and skipped; parsing goes on after them.
	long := "alice:" + k(0) + " " + strings.Repeat("x", MaxLineLen)
	f(long+"\nbob:"+k(1)+"\n", map[string]string{k(1): "bob"}, warning{1, ErrLineTooLong})
	f("bob:"+k(1)+"\n"+long, map[string]string{k(1): "bob"}, warning{2, ErrLineTooLong})
	huge := "alice:" + k(0) + " " + strings.Repeat("x", 200_000)
	f(huge+"\r\nbob:"+k(1)+"\n"+huge+"\n"+huge, map[string]string{k(1): "bob"},
		warning{1, ErrLineTooLong}, warning{3, ErrLineTooLong}, warning{4, ErrLineTooLong})
	f("\xef\xbb\xbf"+huge+"\nbob:"+k(1), map[string]string{k(1): "bob"}, warning{1, ErrLineTooLong})
	f("#"+strings.Repeat("x", 200_000)+"\nbob:"+k(1), map[string]string{k(1): "bob"})
	f("  #"+strings.Repeat("x", 5000)+"\nbob:"+k(1), map[string]string{k(1): "bob"})
	atLimit := "alice:" + k(0)
	atLimit += strings.Repeat(" ", MaxLineLen-len(atLimit))
	f(atLimit+"\r\n"+atLimit+" \n", map[string]string{k(0): "alice"}, warning{2, ErrLineTooLong})
}

func TestParseDuplicateNamesBothKeyIDs(t *testing.T) {
	_, ws := mustParse(t, "# keys\nalice:"+testKey+"\n\nbob:"+testKey+"\n")
	if len(ws) != 1 {
		t.Fatalf("warnings = %v, want one", ws)
	}
	w := ws[0]
	if w.Line != 4 || w.KeyID != "bob" || w.FirstKeyID != "alice" || w.FirstLine != 2 {
		t.Fatalf("warning = %+v", w)
	}
	want := `line 4: duplicate key for key_id "bob" (already used by key_id "alice" on line 2)`
	if w.Error() != want {
		t.Fatalf("warning = %s, want %s", w, want)
	}
}

func TestParseIdentities(t *testing.T) {
	ks, ws := mustParse(t, "bob:"+testKey+" rpm=7\nalice:"+testKey2+"\nbob:sha256:"+hexDigest("sk-third-0123456789")+"\n")
	if len(ws) != 0 {
		t.Fatalf("warnings: %v", ws)
	}
	if ks.Len() != 3 || ks.NumIdentities() != 2 {
		t.Fatalf("Len = %d, NumIdentities = %d; want 3, 2", ks.Len(), ks.NumIdentities())
	}
	bob1, bob2 := ks.Lookup([]byte(testKey)), ks.Lookup([]byte("sk-third-0123456789"))
	if bob1 == nil || bob1 != bob2 {
		t.Fatalf("keys of one key_id have distinct identities: %p, %p", bob1, bob2)
	}
	if *bob1 != (Identity{KeyID: "bob", Settings: Settings{RPM: 7}, Index: 0}) {
		t.Fatalf("bob = %+v", *bob1)
	}
	if alice := ks.Lookup([]byte(testKey2)); alice == nil || *alice != (Identity{KeyID: "alice", Index: 1}) {
		t.Fatalf("alice = %+v", alice)
	}
}

func TestParseReadError(t *testing.T) {
	errRead := errors.New("disk on fire")
	f := func(r io.Reader) {
		t.Helper()
		ks, ws, err := Parse(r)
		if !errors.Is(err, errRead) || ks != nil || ws != nil {
			t.Fatalf("Parse = %v, %v, %v; want only the read error", ks, ws, err)
		}
	}
	f(iotest.ErrReader(errRead))
	f(io.MultiReader(strings.NewReader("alice:"+testKey+"\nbob:"), iotest.ErrReader(errRead)))
	f(io.MultiReader(strings.NewReader(strings.Repeat("x", 100_000)), iotest.ErrReader(errRead)))
	// One byte at a time still parses.
	ks, ws, err := Parse(iotest.OneByteReader(strings.NewReader("\xef\xbb\xbfalice:" + testKey + "\r\nx\n")))
	if err != nil || ks.Len() != 1 || len(ws) != 1 {
		t.Fatalf("Parse(OneByteReader) = %d keys, %v, %v", ks.Len(), ws, err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "api_keys.txt")
	if err := os.WriteFile(path, []byte("alice:"+testKey+"\nbad\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, ws, err := Load(path)
	if err != nil || ks.Len() != 1 || len(ws) != 1 || !errors.Is(ws[0], ErrMissingColon) {
		t.Fatalf("Load = %d keys, %v, %v", ks.Len(), ws, err)
	}

	missing := filepath.Join(dir, "missing.txt")
	ks, ws, err = Load(missing)
	if !errors.Is(err, fs.ErrNotExist) || ks != nil || ws != nil {
		t.Fatalf("Load(missing) = %v, %v, %v; want fs.ErrNotExist", ks, ws, err)
	}
	if !strings.Contains(err.Error(), `cannot read keys file "`+missing+`"`) {
		t.Fatalf("Load(missing) error %q does not name the file", err)
	}

	if _, _, err = Load(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Load(directory) error = %v, want one naming it", err)
	}

	empty := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(empty, []byte("# no keys yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ks, _, err = Load(empty); err != nil || ks == nil || ks.Len() != 0 {
		t.Fatalf("Load(empty) = %v, %v; want an empty key set", ks, err)
	}
}

func TestErrorsIs(t *testing.T) {
	file := strings.Join([]string{
		"no colon",                                 // 1
		"bad id:" + testKey,                        // 2
		"alice:short",                              // 3
		"alice:" + testKey + " nope=1",             // 4
		"alice:" + testKey + " rpm=5",              // 5
		"bob:" + testKey,                           // 6
		"alice:" + testKey2 + " rpm=6",             // 7
		"alice:" + strings.Repeat("k", MaxLineLen), // 8
	}, "\n")
	_, ws := mustParse(t, file)
	want := []error{ErrMissingColon, ErrBadKeyID, ErrBadKey, ErrBadSetting, ErrDuplicateKey, ErrConflictingSettings, ErrLineTooLong}
	lines := []int{1, 2, 3, 4, 6, 7, 8}
	if len(ws) != len(want) {
		t.Fatalf("warnings = %v, want %d", ws, len(want))
	}
	for i, w := range ws {
		var err error = w
		if !errors.Is(err, want[i]) || w.Line != lines[i] {
			t.Fatalf("warning %d = %v, want line %d, %v", i, w, lines[i], want[i])
		}
		var le *LineError
		if !errors.As(err, &le) || le != w {
			t.Fatalf("errors.As failed on %v", w)
		}
		for j, other := range want {
			if j != i && errors.Is(err, other) {
				t.Fatalf("warning %v also matches %v", w, other)
			}
		}
		if !strings.HasPrefix(want[i].Error(), "auth: ") {
			t.Fatalf("sentinel %q lacks the package prefix", want[i])
		}
	}
}

// TestWarningsNeverShowKey builds every kind of bad line around one
// distinctive key and checks that no warning contains it, or its hex digest.
func TestWarningsNeverShowKey(t *testing.T) {
	const key = "SECRETsecretSECRET_secret-0123"
	const key2 = "OTHERotherOTHER_other-4567"
	lines := []string{
		"alice " + key,              // missing colon
		"alice" + key,               // missing colon
		"al ice:" + key,             // bad key_id
		"al ice " + key + ":" + key, // bad key_id holding the key
		"alice:" + key + "!",        // bad characters
		"alice:" + key + ":" + key,  // split at the first ':'
		"alice:" + key + strings.Repeat("K", 128),
		"alice:" + key[:15],   // too short
		"alice:sha256:" + key, // bad hashed key
		"alice:sha256:" + hexDigest(key) + "0",
		"alice:" + key + " " + key2,        // a second key as a setting
		"alice:" + key + " " + key2 + "=1", // as an unknown setting
		"alice:" + key + " rpm=" + key2,    // as a value
		"alice:" + key2 + " rpm=" + key,
		"alice:" + key2 + " " + key + "=" + key,
		"alice:" + key2 + " rpm=1 rpm=" + key,
		"alice:" + key + " rpm=5",
		"bob:" + key,                                    // duplicate
		"carol:sha256:" + hexDigest(key),                // duplicate, hashed
		"alice:" + key2 + " rpm=6",                      // conflicting settings
		"alice:" + key + " " + strings.Repeat(key, 200), // too long
		"alice:" + strings.Repeat(key, 10_000),          // far too long
	}
	_, ws := mustParse(t, strings.Join(lines, "\n"))
	if len(ws) < len(lines)-2 {
		t.Fatalf("only %d warnings for %d lines: %v", len(ws), len(lines), ws)
	}
	secrets := []string{key, key[:16], key2, key2[:16], hexDigest(key), hexDigest(key2)}
	for _, w := range ws {
		msg := w.Error()
		for _, s := range secrets {
			if strings.Contains(msg, s) || strings.Contains(strings.ToLower(msg), strings.ToLower(s)) {
				t.Fatalf("warning %q shows key material %q", msg, s)
			}
		}
	}
	// ParseLine's errors too, one line at a time.
	for i, line := range lines {
		_, _, err := ParseLine([]byte(line), i+1)
		if err != nil && (strings.Contains(err.Error(), key) || strings.Contains(err.Error(), key2)) {
			t.Fatalf("ParseLine error %q shows the key", err)
		}
	}
}

func TestParseLineDoesNotKeepLine(t *testing.T) {
	line := []byte("alice:" + testKey + " rpm=3")
	e, ok, err := ParseLine(line, 1)
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	copy(line, bytes.Repeat([]byte("X"), len(line)))
	if e.KeyID != "alice" {
		t.Fatalf("KeyID aliased the line: %q", e.KeyID)
	}
}

// TestConcurrencySetting: concurrency=N parses from 1 to MaxConcurrency;
// 0, past the bound, not a number, or twice is a bad setting.
func TestConcurrencySetting(t *testing.T) {
	for line, want := range map[string]int{
		"alice:" + testKey + " concurrency=1":             1,
		"alice:" + testKey + " rpm=5 concurrency=1000000": MaxConcurrency,
	} {
		e, ok, err := ParseLine([]byte(line), 1)
		if !ok || err != nil || e.Settings.Concurrency != want {
			t.Errorf("ParseLine(%q) = %+v, %v, %v; want concurrency %d", line, e.Settings, ok, err, want)
		}
	}
	for _, v := range []string{"0", "1000001", "x", "-1", "1 concurrency=2"} {
		line := "alice:" + testKey + " concurrency=" + v
		if _, _, err := ParseLine([]byte(line), 1); !errors.Is(err, ErrBadSetting) {
			t.Errorf("ParseLine(%q): %v, want ErrBadSetting", line, err)
		}
	}
}

// TestTokenSettings: tpm=N and tpd=N parse from 1 to MaxTokens; 0, past
// the bound, or not a number is a bad setting.
func TestTokenSettings(t *testing.T) {
	e, ok, err := ParseLine([]byte("alice:"+testKey+" tpm=1000 tpd=1000000000000"), 1)
	if !ok || err != nil || e.Settings.TPM != 1000 || e.Settings.TPD != MaxTokens {
		t.Fatalf("ParseLine: %+v, %v, %v", e.Settings, ok, err)
	}
	for _, v := range []string{"tpm=0", "tpd=1000000000001", "tpm=1k", "tpm=5 tpm=6"} {
		if _, _, err := ParseLine([]byte("alice:"+testKey+" "+v), 1); !errors.Is(err, ErrBadSetting) {
			t.Errorf("%s: %v, want ErrBadSetting", v, err)
		}
	}
}
