package netconn

import "unsafe"

// B2S returns b's bytes as a string without a copy. b must not be modified
// while the string is in use, and the string must not be kept.
func B2S(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// S2B returns s's bytes as a byte slice without a copy. The slice must not
// be modified, and must not be kept longer than s.
func S2B(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
