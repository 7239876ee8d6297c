package openai

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects a body may have,
// the top-level value counting as one level; a deeper body is refused with
// ErrTooDeep. Python's json stops near 1000 levels, encoding/json at 10000;
// a request's tool schemas nest a few tens deep.
const MaxDepth = 256

// Errors of the JSON readers. A body that fails is refused whole: none of
// what was read from it before the failure is reported.
var (
	// ErrSyntax: the body is not JSON as RFC 8259 defines it.
	ErrSyntax = errors.New("openai: the body is not valid JSON")
	// ErrNotObject: the body is JSON, but not an object.
	ErrNotObject = errors.New("openai: the body is not a JSON object")
	// ErrTooDeep: arrays and objects nest deeper than MaxDepth.
	ErrTooDeep = errors.New("openai: the body nests arrays and objects too deeply")
	// ErrDuplicate: a member the package reads is given more than once,
	// which parsers resolve differently.
	ErrDuplicate = errors.New("openai: a member is given more than once")
	// ErrType: a member the package reads has the wrong type or value.
	ErrType = errors.New("openai: a member has the wrong type or value")
)

// FieldError names the member at fault, as a dotted path such as
// "stream_options.include_usage", for ErrDuplicate and ErrType. It quotes
// nothing of the body: the path is one of the package's own names.
type FieldError struct {
	Field string
	Err   error // ErrDuplicate or ErrType
}

func (e *FieldError) Error() string { return e.Err.Error() + ": " + e.Field }

// Unwrap returns e.Err, for errors.Is.
func (e *FieldError) Unwrap() error { return e.Err }

// bodyError returns err, a syntax or depth error found at byte off, with
// its offset.
func bodyError(err error, off int) error {
	return fmt.Errorf("%w (at byte %d)", err, off)
}

// The scanner below reads JSON in place: every function takes the body and
// an offset, and returns the offset after what it read. Errors are the
// package's sentinels, returned with the offset where they were found; the
// exported functions wrap them with bodyError. Nothing allocates.

// skipSpace returns the offset of the first byte at or after i that is
// not JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue checks the JSON value starting at b[i], inside depth levels of
// arrays and objects, and returns the offset just past it.
func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, ErrSyntax
	}
	switch b[i] {
	case '"':
		end, _, err := scanString(b, i)
		return end, err
	case '{':
		o, err := openObject(b, i, depth)
		if err != nil {
			return o.i, err
		}
		for o.next() {
		}
		return o.i, o.err
	case '[':
		a, err := openArray(b, i, depth)
		if err != nil {
			return a.i, err
		}
		for a.next() {
		}
		return a.i, a.err
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	default:
		return scanNumber(b, i)
	}
}

// literal checks that b[i:] starts with word.
func literal(b []byte, i int, word string) (int, error) {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return i, ErrSyntax
	}
	return i + len(word), nil
}

// scanNumber checks the number starting at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, error) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, ErrSyntax
	case b[i] == '0':
		i++
	case isDigit(b[i]):
		i = skipDigits(b, i)
	default:
		return i, ErrSyntax
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			return i, ErrSyntax
		}
		i = skipDigits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, ErrSyntax
		}
		i = skipDigits(b, i)
	}
	return i, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// Words of eight bytes, for scanString's test of eight bytes at once.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// specialBytes returns a word whose lowest set bit is the high bit of the
// first byte of x (in little-endian order) that is '"', '\\' or a control
// character (below 0x20), or 0 if there is none. (v-ones)&^v&highs sets the
// high bit of the first byte of v below the subtracted byte, and of no
// byte before it (a borrow only moves towards later bytes).
func specialBytes(x uint64) uint64 {
	q := x ^ (ones * '"')
	s := x ^ (ones * '\\')
	return ((q-ones)&^q | (s-ones)&^s | (x-ones*0x20)&^x) & highs
}

// scanString checks the string whose opening quote is b[i] and returns
// the offset just past its closing quote, and whether it has escapes.
// Bytes of 0x80 and above are not checked to be UTF-8, as encoding/json
// does not check them.
func scanString(b []byte, i int) (end int, escaped bool, err error) {
	i++
	for {
		for i+8 <= len(b) {
			if m := specialBytes(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(b) && b[i] >= 0x20 && b[i] != '"' && b[i] != '\\' {
			i++
		}
		if i >= len(b) {
			return i, escaped, ErrSyntax
		}
		switch b[i] {
		case '"':
			return i + 1, escaped, nil
		case '\\':
			n := escapeLen(b, i)
			if n == 0 {
				return i, escaped, ErrSyntax
			}
			escaped = true
			i += n
		default: // a control character
			return i, escaped, ErrSyntax
		}
	}
}

// escapeLen returns the length of the escape sequence at b[i], a
// backslash, or 0 if it is not one.
func escapeLen(b []byte, i int) int {
	if i+1 >= len(b) {
		return 0
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if i+6 > len(b) {
			return 0
		}
		for _, c := range b[i+2 : i+6] {
			if unhex(c) < 0 {
				return 0
			}
		}
		return 6
	}
	return 0
}

// unhex returns the value of the hexadecimal digit c, or -1.
func unhex(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return rune(c-'A') + 10
	}
	return -1
}

// decodeEscape decodes the escape sequence at s[i], checked by scanString,
// and returns its rune and length. A \u escape of a UTF-16 surrogate pair
// is decoded as one rune; a lone surrogate is utf8.RuneError, as
// encoding/json decodes it, and lone reports it.
func decodeEscape(s []byte, i int) (r rune, n int, lone bool) {
	switch c := s[i+1]; c {
	case 'b':
		return '\b', 2, false
	case 'f':
		return '\f', 2, false
	case 'n':
		return '\n', 2, false
	case 'r':
		return '\r', 2, false
	case 't':
		return '\t', 2, false
	case 'u':
		r = hex4(s[i+2 : i+6])
		if !utf16.IsSurrogate(r) {
			return r, 6, false
		}
		if i+12 <= len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
			if r2 := utf16.DecodeRune(r, hex4(s[i+8:i+12])); r2 != utf8.RuneError {
				return r2, 12, false
			}
		}
		return utf8.RuneError, 6, true
	default: // '"', '\\', '/'
		return rune(c), 2, false
	}
}

func hex4(h []byte) rune {
	return unhex(h[0])<<12 | unhex(h[1])<<8 | unhex(h[2])<<4 | unhex(h[3])
}

// appendText appends the text of a checked string's contents raw (between
// its quotes) to dst, unescaped. It reports false if raw is not text: not
// UTF-8, or with a lone surrogate escape, which encoding/json would replace
// with U+FFFD and Python's json would keep.
func appendText(dst, raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		j := i
		for j < len(raw) && raw[j] != '\\' {
			j++
		}
		if !utf8.Valid(raw[i:j]) {
			return dst, false
		}
		dst = append(dst, raw[i:j]...)
		if j == len(raw) {
			break
		}
		r, n, lone := decodeEscape(raw, j)
		if lone {
			return dst, false
		}
		dst = utf8.AppendRune(dst, r)
		i = j + n
	}
	return dst, true
}

// keyIs reports whether the checked key raw (between its quotes), with
// escapes if escaped, is name, an ASCII string, once unescaped.
func keyIs(raw []byte, escaped bool, name string) bool {
	if !escaped {
		return string(raw) == name
	}
	j := 0
	for i := 0; i < len(raw); j++ {
		c := raw[i]
		if c == '\\' {
			r, n, _ := decodeEscape(raw, i)
			if r >= utf8.RuneSelf {
				return false
			}
			c = byte(r)
			i += n
		} else {
			i++
		}
		if j >= len(name) || name[j] != c {
			return false
		}
	}
	return j == len(name)
}

// object reads the members of a JSON object in place, checking them.
//
//	o, err := openObject(b, i, depth)
//	for o.next() { ... o.key, o.val ... }
//	if o.err != nil { ... }
//
// After the loop, o.i is the offset just past the closing brace.
type object struct {
	b       []byte
	i       int
	depth   int // of the object's members
	started bool

	key        []byte // the current member's key, between its quotes
	keyEscaped bool   // whether key has escapes
	val        span   // the current member's value
	err        error  // the syntax or depth error that ended the loop
}

// span is the place of a value in the body: b[start:end].
type span struct{ start, end int }

// openObject starts reading the object whose opening brace is b[i], at
// depth levels inside the document.
func openObject(b []byte, i, depth int) (object, error) {
	if i >= len(b) || b[i] != '{' {
		return object{i: i}, ErrSyntax
	}
	if depth >= MaxDepth {
		return object{i: i}, ErrTooDeep
	}
	return object{b: b, i: i + 1, depth: depth + 1}, nil
}

// next reads the next member and reports whether there is one; false at
// the end of the object, or on an error, which it sets in o.err.
func (o *object) next() bool {
	b := o.b
	i := skipSpace(b, o.i)
	if i < len(b) && b[i] == '}' && !o.started {
		o.i = i + 1
		return false
	}
	if o.started {
		if i >= len(b) {
			return o.fail(i, ErrSyntax)
		}
		if b[i] == '}' {
			o.i = i + 1
			return false
		}
		if b[i] != ',' {
			return o.fail(i, ErrSyntax)
		}
		i = skipSpace(b, i+1)
	}
	o.started = true
	if i >= len(b) || b[i] != '"' {
		return o.fail(i, ErrSyntax)
	}
	end, escaped, err := scanString(b, i)
	if err != nil {
		return o.fail(end, err)
	}
	o.key, o.keyEscaped = b[i+1:end-1], escaped
	i = skipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return o.fail(i, ErrSyntax)
	}
	i = skipSpace(b, i+1)
	end, err = skipValue(b, i, o.depth)
	if err != nil {
		return o.fail(end, err)
	}
	o.val = span{i, end}
	o.i = end
	return true
}

func (o *object) fail(at int, err error) bool {
	o.i, o.err = at, err
	return false
}

// keyIs reports whether the current member's key is name.
func (o *object) keyIs(name string) bool { return keyIs(o.key, o.keyEscaped, name) }

// array reads the elements of a JSON array in place, checking them, as
// object reads an object's members.
type array struct {
	b       []byte
	i       int
	depth   int
	started bool

	val span
	err error
}

// openArray starts reading the array whose opening bracket is b[i].
func openArray(b []byte, i, depth int) (array, error) {
	if i >= len(b) || b[i] != '[' {
		return array{i: i}, ErrSyntax
	}
	if depth >= MaxDepth {
		return array{i: i}, ErrTooDeep
	}
	return array{b: b, i: i + 1, depth: depth + 1}, nil
}

// next reads the next element and reports whether there is one.
func (a *array) next() bool {
	b := a.b
	i := skipSpace(b, a.i)
	if i < len(b) && b[i] == ']' && !a.started {
		a.i = i + 1
		return false
	}
	if a.started {
		if i >= len(b) {
			return a.fail(i, ErrSyntax)
		}
		if b[i] == ']' {
			a.i = i + 1
			return false
		}
		if b[i] != ',' {
			return a.fail(i, ErrSyntax)
		}
		i = skipSpace(b, i+1)
	}
	a.started = true
	end, err := skipValue(b, i, a.depth)
	if err != nil {
		return a.fail(end, err)
	}
	a.val = span{i, end}
	a.i = end
	return true
}

func (a *array) fail(at int, err error) bool {
	a.i, a.err = at, err
	return false
}

// openDocument starts reading body as one JSON object with nothing but
// white space around it; close checks the end. It returns ErrNotObject for
// JSON that is not an object.
func openDocument(body []byte) (object, error) {
	i := skipSpace(body, 0)
	if i < len(body) && body[i] != '{' {
		// Check the value, to tell invalid JSON from another type.
		end, err := skipValue(body, i, 0)
		if err == nil && skipSpace(body, end) == len(body) {
			return object{}, ErrNotObject
		}
		if err == nil {
			err = ErrSyntax
		}
		return object{}, bodyError(err, end)
	}
	o, err := openObject(body, i, 0)
	if err != nil {
		return o, bodyError(err, o.i)
	}
	return o, nil
}

// close returns the error that ended the loop over a document's members,
// or ErrSyntax if anything but white space follows the object.
func (o *object) close() error {
	if o.err != nil {
		return bodyError(o.err, o.i)
	}
	if end := skipSpace(o.b, o.i); end != len(o.b) {
		return bodyError(ErrSyntax, end)
	}
	return nil
}

// readInt reads the checked value v as a non-negative integer that fits
// an int: digits only, no sign, fraction or exponent.
func readInt(v []byte) (int, bool) {
	if len(v) == 0 || v[0] == '0' && len(v) > 1 {
		return 0, false
	}
	n := 0
	for _, c := range v {
		d := int(c - '0')
		if !isDigit(c) || n > (math.MaxInt-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
