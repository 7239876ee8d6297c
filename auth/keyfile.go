package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// MaxLineLen is the longest line of a keys file, in bytes, not counting its
// line ending. Longer lines, comments excepted, are rejected with
// ErrLineTooLong.
const MaxLineLen = 4096

// MaxRPM is the largest value of the rpm setting.
const MaxRPM = 10_000_000

// MaxConcurrency is the largest value of the concurrency setting.
const MaxConcurrency = 1_000_000

// MaxTokens is the largest value of the tpm and tpd settings.
const MaxTokens = 1_000_000_000_000

// Settings are the optional per-key settings of a keys file line. They
// follow the key after whitespace, as whitespace-separated name=value pairs:
//
//	alice:sk-0123456789abcdef  rpm=600
//
// Known settings:
//
//	rpm=N              the key_id's limit, N requests in any 60 s window, 1..MaxRPM
//	models=P[,P...]    the models the key_id may use: shell-style patterns
//	                   ([MatchModel]), at most MaxModelPatterns
//	expires=T          when the key_id's keys stop working: an RFC 3339
//	                   instant, or a date YYYY-MM-DD (UTC midnight)
//	concurrency=N      the most requests of the key_id in flight at once,
//	                   streams included, 1..MaxConcurrency
//	tpm=N              the most tokens of the key_id's requests in any
//	                   60 s window, 1..MaxTokens
//	tpd=N              the most tokens of the key_id's requests on one UTC
//	                   day, 1..MaxTokens
//
// An unknown name, a pair without '=', an empty or invalid value, or a name
// given twice on one line makes the line invalid ([ErrBadSetting]).
//
// Settings belong to the key_id: all keys of one key_id share them (see
// [Identity]). The zero value means "no settings": every field at the
// gateway's default.
type Settings struct {
	// RPM is the key_id's limit in requests per any 60 s window;
	// 0 means the gateway's default (MAX_REQUESTS_PER_MINUTE).
	RPM int
	// Models is the key_id's model list as written, comma-separated
	// patterns ([MatchModel]); empty means every model.
	Models string
	// Expires is when the key_id's keys stop working (UTC, whole
	// seconds); zero means never.
	Expires time.Time
	// Concurrency is the most requests of the key_id in flight at once;
	// 0 means no limit.
	Concurrency int
	// TPM and TPD are the key_id's token limits per 60 s window and per
	// UTC day; 0 means the gateway's default.
	TPM, TPD int64
}

// valid reports whether s holds values that a keys file could give.
func (s Settings) valid() bool {
	return s.RPM >= 0 && s.RPM <= MaxRPM && (s.Models == "" || validModels(s.Models) == nil) &&
		s.Concurrency >= 0 && s.Concurrency <= MaxConcurrency &&
		s.TPM >= 0 && s.TPM <= MaxTokens && s.TPD >= 0 && s.TPD <= MaxTokens
}

// ModelPatterns returns the patterns of s.Models, nil if it has none.
func (s Settings) ModelPatterns() []string {
	if s.Models == "" {
		return nil
	}
	return strings.Split(s.Models, ",")
}

// Expired reports whether the key_id's keys have stopped working at now.
func (s Settings) Expired(now time.Time) bool {
	return !s.Expires.IsZero() && !now.Before(s.Expires)
}

// Entry is one valid line of a keys file.
type Entry struct {
	// Line is the 1-based line number in the keys file, counting every
	// line; for entries built in memory, any number that identifies them
	// in warnings.
	Line int
	// KeyID names the key in logs and limits; [ValidKeyID] holds.
	KeyID string
	// Digest is the SHA-256 of the API key: computed from a plain key,
	// decoded from a sha256:<hex> one. The plain key is not kept.
	Digest [32]byte
	// Hashed reports whether the file held sha256:<hex> rather than the
	// plain key.
	Hashed bool
	// Settings are the line's settings; zero when it has none.
	Settings Settings
}

// Reasons a keys file line is rejected, wrapped by [LineError]; test for
// them with errors.Is.
var (
	// ErrMissingColon: a line that is neither blank nor a comment has no ':'.
	ErrMissingColon = errors.New("auth: missing ':'")
	// ErrBadKeyID: the key_id is not 1 to 128 bytes of [A-Za-z0-9_-].
	ErrBadKeyID = errors.New("auth: bad key_id")
	// ErrBadKey: the key is neither 16 to 128 bytes of [A-Za-z0-9_-] nor
	// "sha256:" followed by 64 hex digits.
	ErrBadKey = errors.New("auth: bad key format")
	// ErrBadSetting: a setting after the key is unknown, lacks '=', has an
	// empty or invalid value, or is repeated (see [Settings]).
	ErrBadSetting = errors.New("auth: bad setting")
	// ErrDuplicateKey: the key (compared by digest, so a plain key and its
	// sha256: form are the same key) was already given on an earlier line,
	// whose entry wins.
	ErrDuplicateKey = errors.New("auth: duplicate key")
	// ErrConflictingSettings: the line gives settings that differ from
	// those of its key_id's first entry, which apply to every key of the
	// key_id. Unlike the others, this warning does not drop the line: its
	// key is accepted, with the first entry's settings. A line without
	// settings never conflicts.
	ErrConflictingSettings = errors.New("auth: conflicting settings")
	// ErrLineTooLong: the line is longer than MaxLineLen bytes.
	ErrLineTooLong = errors.New("auth: line too long (over 4096 bytes)")
)

// LineError is a warning about one line of a keys file. It never contains
// any part of a key.
type LineError struct {
	// Line is the 1-based number of the line at fault.
	Line int
	// Err is the reason: one of the Err* sentinels, possibly wrapped with
	// details.
	Err error
	// KeyID is the line's key_id; set for ErrDuplicateKey and
	// ErrConflictingSettings only.
	KeyID string
	// FirstKeyID is the key_id of the entry that won; set for
	// ErrDuplicateKey only.
	FirstKeyID string
	// FirstLine is the line of the entry that won: the first holder of the
	// key for ErrDuplicateKey, the key_id's first entry for
	// ErrConflictingSettings.
	FirstLine int
}

// Error returns the warning as "line N: why", for example
// `line 3: missing ':'` or
// `line 7: duplicate key for key_id "bob" (already used by key_id "alice" on line 2)`.
func (e *LineError) Error() string {
	switch e.Err {
	case ErrDuplicateKey:
		return fmt.Sprintf("line %d: duplicate key for key_id %q (already used by key_id %q on line %d)",
			e.Line, e.KeyID, e.FirstKeyID, e.FirstLine)
	case ErrConflictingSettings:
		return fmt.Sprintf("line %d: settings for key_id %q differ from its first entry on line %d, whose settings apply",
			e.Line, e.KeyID, e.FirstLine)
	case nil:
		return fmt.Sprintf("line %d: invalid", e.Line)
	}
	return fmt.Sprintf("line %d: %s", e.Line, strings.TrimPrefix(e.Err.Error(), "auth: "))
}

// Unwrap returns e.Err, so that errors.Is(e, ErrBadKey) and the like work.
func (e *LineError) Unwrap() error {
	return e.Err
}

// ParseLine parses one line of a keys file (docs/keys-file.md#format); lineNum is its 1-based
// number, used in the returned error. A trailing "\n" or "\r\n" is ignored.
//
// Blank lines and lines whose first non-whitespace byte is '#' give
// ok=false and a nil error. Otherwise the line, trimmed of ASCII whitespace,
// is split at its first ':' into key_id and the rest, each trimmed; the
// rest is split on whitespace, its first field being the key and the others
// settings (see [Settings]). The key is either a plain key ([ValidKey]) or
// "sha256:" followed by exactly 64 hex digits of either case.
//
// A line that is invalid gives ok=false and a *LineError wrapping
// ErrLineTooLong, ErrMissingColon, ErrBadKeyID, ErrBadKey or ErrBadSetting;
// the error never contains the key. ParseLine does not keep line.
func ParseLine(line []byte, lineNum int) (e Entry, ok bool, err error) {
	return parseLine(line, lineNum, nil)
}

// parseLine is ParseLine; with known not nil, a key_id it already has
// (a KeySet builder's) is reused rather than allocated again, so that a
// file's many lines of one key_id share one string.
func parseLine(line []byte, lineNum int, known map[string]*Identity) (e Entry, ok bool, err error) {
	line = trimEOL(line)
	s := trimSpace(line)
	if len(s) == 0 || s[0] == '#' {
		return Entry{}, false, nil
	}
	if len(line) > MaxLineLen {
		return Entry{}, false, &LineError{Line: lineNum, Err: ErrLineTooLong}
	}
	lineErr := func(err error) (Entry, bool, error) {
		return Entry{}, false, &LineError{Line: lineNum, Err: err}
	}

	colon := bytes.IndexByte(s, ':')
	if colon < 0 {
		return lineErr(ErrMissingColon)
	}
	id := trimSpace(s[:colon])
	if !ValidKeyID(id) {
		// The text is not shown: a malformed line may hold a key there.
		if LooksLikeKey(id) {
			return lineErr(fmt.Errorf("%w: it looks like an API key (sk-…); is the line the wrong way round? want key_id:api_key", ErrBadKeyID))
		}
		return lineErr(fmt.Errorf("%w: want 1 to %d of [A-Za-z0-9_-]", ErrBadKeyID, MaxKeyIDLen))
	}
	e.Line = lineNum
	if ident := known[string(id)]; ident != nil {
		e.KeyID = ident.KeyID
	} else {
		e.KeyID = string(id)
	}

	keyField, rest := nextField(s[colon+1:])
	var why string
	e.Digest, e.Hashed, why = parseKeyField(keyField)
	if why != "" {
		return lineErr(fmt.Errorf("%w for key_id %q: %s", ErrBadKey, e.KeyID, why))
	}
	if e.Settings, err = parseSettings(rest, e.KeyID); err != nil {
		return lineErr(err)
	}
	return e, true, nil
}

// parseKeyField returns the digest of the key field f of a line, and
// whether f held it as sha256:<hex>; or, if f is invalid, why, in words
// that never reveal f.
func parseKeyField(f []byte) (d [32]byte, hashed bool, why string) {
	if h, ok := bytes.CutPrefix(f, []byte(hashedPrefix)); ok {
		if len(h) != 2*len(d) {
			return d, false, "sha256: must be followed by 64 hex digits"
		}
		if _, err := hex.Decode(d[:], h); err != nil {
			return d, false, "sha256: must be followed by 64 hex digits"
		}
		return d, true, ""
	}
	switch {
	case len(f) == 0:
		return d, false, "no key"
	case len(f) < MinKeyLen:
		return d, false, fmt.Sprintf("shorter than %d bytes", MinKeyLen)
	case len(f) > MaxKeyLen:
		return d, false, fmt.Sprintf("longer than %d bytes", MaxKeyLen)
	case !allTokenChars(f):
		return d, false, "characters outside [A-Za-z0-9_-]"
	}
	return sha256.Sum256(f), false, ""
}

// Bits of the settings already seen on a line, to reject repeats.
const (
	seenRPM = 1 << iota
	seenModels
	seenExpires
	seenConcurrency
	seenTPM
	seenTPD
)

// maxShownSettingName is the longest unknown setting name that an error
// shows. It is shorter than MinKeyLen, so that a key mistaken for a setting
// is never shown.
const maxShownSettingName = MinKeyLen - 1

// parseSettings parses the whitespace-separated name=value settings in b,
// which follow the key of key_id's line.
func parseSettings(b []byte, keyID string) (Settings, error) {
	var s Settings
	var seen uint
	for {
		var f []byte
		f, b = nextField(b)
		if len(f) == 0 {
			return s, nil
		}
		name, val, ok := bytes.Cut(f, []byte("="))
		if !ok {
			if knownSetting(f) {
				return s, fmt.Errorf("%w %q for key_id %q: missing '=' (want name=value)", ErrBadSetting, f, keyID)
			}
			// Not shown: it may be a second key.
			return s, fmt.Errorf("%w for key_id %q: a setting without '=' (want name=value)", ErrBadSetting, keyID)
		}
		switch string(name) {
		case "rpm", "models", "expires", "concurrency", "tpm", "tpd":
		default:
			if len(name) == 0 || len(name) > maxShownSettingName || !allTokenChars(name) {
				return s, fmt.Errorf("%w for key_id %q: unknown setting (known: %s)", ErrBadSetting, keyID, knownSettings)
			}
			return s, fmt.Errorf("%w %q for key_id %q: unknown setting (known: %s)", ErrBadSetting, name, keyID, knownSettings)
		}
		bit := settingBit(name)
		if seen&bit != 0 {
			return s, fmt.Errorf("%w %q for key_id %q: given twice", ErrBadSetting, name, keyID)
		}
		seen |= bit
		switch string(name) {
		case "rpm":
			n, ok := parseUint(val, MaxRPM)
			if !ok || n == 0 {
				return s, fmt.Errorf("%w %q for key_id %q: want an integer from 1 to %d", ErrBadSetting, name, keyID, MaxRPM)
			}
			s.RPM = n
		case "models":
			if err := validModels(string(val)); err != nil {
				return s, fmt.Errorf("%w %q for key_id %q: %v", ErrBadSetting, name, keyID, err)
			}
			s.Models = string(val)
		case "expires":
			t, err := parseExpires(string(val))
			if err != nil {
				return s, fmt.Errorf("%w %q for key_id %q: %v", ErrBadSetting, name, keyID, err)
			}
			s.Expires = t
		case "concurrency":
			n, ok := parseUint(val, MaxConcurrency)
			if !ok || n == 0 {
				return s, fmt.Errorf("%w %q for key_id %q: want an integer from 1 to %d", ErrBadSetting, name, keyID, MaxConcurrency)
			}
			s.Concurrency = n
		case "tpm", "tpd":
			n, ok := parseUint(val, MaxTokens)
			if !ok || n == 0 {
				return s, fmt.Errorf("%w %q for key_id %q: want an integer from 1 to %d", ErrBadSetting, name, keyID, MaxTokens)
			}
			if string(name) == "tpm" {
				s.TPM = int64(n)
			} else {
				s.TPD = int64(n)
			}
		}
	}
}

// knownSettings lists the settings' names, for errors.
const knownSettings = "rpm, models, expires, concurrency, tpm, tpd"

// knownSetting reports whether name is the name of a setting.
func knownSetting(name []byte) bool { return settingBit(name) != 0 }

// settingBit is name's bit in parseSettings' record of the names seen, 0
// for an unknown name.
func settingBit(name []byte) uint {
	switch string(name) {
	case "rpm":
		return seenRPM
	case "models":
		return seenModels
	case "expires":
		return seenExpires
	case "concurrency":
		return seenConcurrency
	case "tpm":
		return seenTPM
	case "tpd":
		return seenTPD
	}
	return 0
}

// parseUint parses b as a decimal integer of at most max, digits only.
func parseUint(b []byte, max int) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
		if n > max {
			return 0, false
		}
	}
	return n, true
}

// Parse reads a keys file (docs/keys-file.md#format; see [ParseLine] for the syntax of a line)
// and builds its [KeySet] with [NewKeySet].
//
// Lines end in "\n" or "\r\n"; a UTF-8 byte order mark at the start is
// ignored. Invalid lines, lines longer than MaxLineLen, and keys seen twice
// are skipped and reported in warnings, in line order, and parsing goes on.
// A file without any valid key gives an empty KeySet (Len 0), not an error:
// the caller decides whether to fail closed. The error is non-nil only if
// reading r fails, and then the other results are nil.
func Parse(r io.Reader) (*KeySet, []*LineError, error) {
	b := newKeySetBuilder(sizeHint(r))
	if err := parseInto(b, r); err != nil {
		return nil, nil, err
	}
	return b.ks, b.warnings, nil
}

// Load reads the keys file at path with [Parse]. Its error wraps the one
// from opening or reading the file; it is never about the file's content.
func Load(path string) (*KeySet, []*LineError, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read keys file %q: %w", path, err)
	}
	defer f.Close()
	ks, warnings, err := Parse(f)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read keys file %q: %w", path, err)
	}
	return ks, warnings, nil
}

// bytesPerKeyHint is a typical length of a keys file line, such as
// "alice-laptop:sk-" followed by 43 characters of base64: a lower estimate
// than most, so that maps are rarely sized above need.
const bytesPerKeyHint = 64

// sizeHint estimates the number of keys per shard that r will give, from
// its size if it tells it (as *os.File, *bytes.Reader and *strings.Reader
// do); nil if it does not. Maps sized ahead skip their growth steps, a
// third of the time of a large file.
func sizeHint(r io.Reader) *[numShards]int {
	var size int64
	switch r := r.(type) {
	case interface{ Len() int }:
		size = int64(r.Len())
	case interface{ Stat() (os.FileInfo, error) }:
		fi, err := r.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		size = fi.Size()
	default:
		return nil
	}
	perShard := int(min(size/bytesPerKeyHint, 1<<30) / numShards)
	if perShard == 0 {
		return nil
	}
	var sizes [numShards]int
	for i := range sizes {
		sizes[i] = perShard
	}
	return &sizes
}

// utf8BOM is the UTF-8 byte order mark, ignored at the start of a file.
var utf8BOM = []byte("\xef\xbb\xbf")

// parseInto parses every line of r into b.
func parseInto(b *keySetBuilder, r io.Reader) error {
	// A buffer larger than MaxLineLen, so that a line within the limit is
	// always returned whole by ReadSlice.
	br := bufio.NewReaderSize(r, 64<<10)
	for lineNum := 1; ; lineNum++ {
		line, err := br.ReadSlice('\n')
		if lineNum == 1 {
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		if err == bufio.ErrBufferFull {
			// Far too long: skip the rest of the line.
			comment := isComment(line)
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return fmt.Errorf("cannot read line %d: %w", lineNum, err)
			}
			if !comment {
				b.warn(&LineError{Line: lineNum, Err: ErrLineTooLong})
			}
			if err == io.EOF {
				return nil
			}
			continue
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("cannot read line %d: %w", lineNum, err)
		}
		if len(line) == 0 && err == io.EOF {
			return nil
		}
		e, ok, lerr := parseLine(line, lineNum, b.ks.byKeyID)
		if ok {
			b.add(&e)
		} else if lerr != nil {
			b.warn(lerr.(*LineError))
		}
		if err == io.EOF {
			return nil
		}
	}
}

// isComment reports whether line, the start of a line, is a comment: its
// first non-whitespace byte is '#'.
func isComment(line []byte) bool {
	for _, c := range line {
		if !isSpace(c) {
			return c == '#'
		}
	}
	return false
}

// isSpace reports whether c is ASCII whitespace.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// trimSpace returns b without leading and trailing ASCII whitespace.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// trimEOL returns line without a trailing "\n" or "\r\n".
func trimEOL(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	return line
}

// nextField returns the first whitespace-separated field of b and what
// follows it; field is empty when b holds only whitespace.
func nextField(b []byte) (field, rest []byte) {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	i := 0
	for i < len(b) && !isSpace(b[i]) {
		i++
	}
	return b[:i], b[i:]
}
