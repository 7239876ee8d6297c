//go:build !race

package auth

import (
	"crypto/sha256"
	"testing"
)

func TestAllocationLookup(t *testing.T) {
	ks, _ := mustParse(t, "alice:"+testKey+"\n")
	hit, miss := []byte(testKey), []byte(testKey2)
	d := sha256.Sum256(hit)
	n := testing.AllocsPerRun(100, func() {
		if ks.Lookup(hit) == nil || ks.Lookup(miss) != nil || ks.LookupDigest(&d) == nil {
			t.Fatal("unexpected lookup result")
		}
	})
	if n != 0 {
		t.Fatalf("Lookup allocates %v times per run, want 0", n)
	}
}

func TestAllocationParseAuthorization(t *testing.T) {
	headers := [][]byte{
		[]byte("Bearer " + testKey),
		[]byte(testKey),
		[]byte("bearer \t"),
		[]byte(""),
		[]byte("Basic abc"),
	}
	n := testing.AllocsPerRun(100, func() {
		for _, h := range headers {
			ParseAuthorization(h)
		}
	})
	if n != 0 {
		t.Fatalf("ParseAuthorization allocates %v times per run, want 0", n)
	}
}

func TestAllocationReason(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		for r := ReasonOK; r <= ReasonUnknown; r++ {
			_ = r.Message()
			_ = r.String()
		}
	})
	if n != 0 {
		t.Fatalf("Reason methods allocate %v times per run, want 0", n)
	}
}
