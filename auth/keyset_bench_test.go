package auth

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strconv"
	"sync"
	"testing"
)

// benchKey returns the i-th key of the benchmark key sets.
func benchKey(i int) []byte {
	return fmt.Appendf(nil, "sk-bench-%016d", i)
}

// benchKeySet builds a key set of n keys, 10 keys per key_id.
func benchKeySet(n int) *KeySet {
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = Entry{Line: i + 1, KeyID: "id" + strconv.Itoa(i/10), Digest: sha256.Sum256(benchKey(i))}
	}
	ks, _ := NewKeySet(entries)
	return ks
}

// benchKeySets are built once per process: the 1,000,000-key set takes a
// while.
var benchKeySets = sync.OnceValue(func() map[int]*KeySet {
	return map[int]*KeySet{10: benchKeySet(10), 1_000_000: benchKeySet(1_000_000)}
})

// benchProbes returns 1024 keys spread over a set of n keys (hit) or
// absent from it (miss).
func benchProbes(n int, hit bool) [][]byte {
	probes := make([][]byte, 1024)
	for i := range probes {
		j := (i * 7919) % n
		if !hit {
			j += n
		}
		probes[i] = benchKey(j)
	}
	return probes
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{10, 1_000_000} {
		ks := benchKeySets()[n]
		for _, hit := range []bool{true, false} {
			name := fmt.Sprintf("keys=%d/hit=%v", n, hit)
			probes := benchProbes(n, hit)
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if (ks.Lookup(probes[i%len(probes)]) != nil) != hit {
						b.Fatal("unexpected lookup result")
					}
					i++
				}
			})
			b.Run(name+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						if (ks.Lookup(probes[i%len(probes)]) != nil) != hit {
							b.Error("unexpected lookup result")
							return
						}
						i++
					}
				})
			})
		}
	}
}

// BenchmarkSHA256 is the baseline of Lookup: hashing a key alone.
func BenchmarkSHA256(b *testing.B) {
	key := benchKey(1)
	b.ReportAllocs()
	for b.Loop() {
		sha256.Sum256(key)
	}
}

func BenchmarkParseAuthorization(b *testing.B) {
	for _, c := range []struct{ name, h string }{
		{"bearer", "Bearer sk-bench-0123456789abcdef0123456789abcdef"},
		{"bare", "sk-bench-0123456789abcdef"},
		{"basic", "Basic abc"},
	} {
		h := []byte(c.h)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(h)))
			for b.Loop() {
				ParseAuthorization(h)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		var file bytes.Buffer
		for i := 0; i < n; i++ {
			fmt.Fprintf(&file, "id%d:sk-bench-%016d", i/2, i)
			if i%10 == 0 {
				file.WriteString(" rpm=600")
			}
			file.WriteByte('\n')
		}
		b.Run(fmt.Sprintf("lines=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(file.Len()))
			for b.Loop() {
				ks, ws, err := Parse(bytes.NewReader(file.Bytes()))
				if err != nil || ks.Len() != n || len(ws) != 0 {
					b.Fatalf("Parse: %d keys, %d warnings, %v", ks.Len(), len(ws), err)
				}
			}
		})
	}
}
