package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestAFirst: the pairs alternate, starting with A (the log on, for
// logCost).
func TestAFirst(t *testing.T) {
	var got []bool
	for i := range 4 {
		got = append(got, aFirst(i))
	}
	if want := []bool{true, false, true, false}; !slices.Equal(got, want) {
		t.Fatalf("A first in pairs 0-3: %v, want %v", got, want)
	}
}

func TestCPUCount(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{{"0", 1}, {"0,1", 2}, {"0-3", 4}, {"0,2-3", 3}} {
		if got := cpuCount(c.in); got != c.want {
			t.Errorf("cpuCount(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestCountLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	os.WriteFile(p, []byte("a\nb\nc\n"), 0o644)
	if n, err := countLines(p); n != 3 || err != nil {
		t.Errorf("countLines = %d, %v", n, err)
	}
	if n, err := countLines(p + ".missing"); n != 0 || err != nil {
		t.Errorf("countLines of a missing file = %d, %v", n, err)
	}
}

func TestABReportName(t *testing.T) {
	if got := abReportName("bin/authgate-ab-1a2b3c4"); got != "ab-authgate-ab-1a2b3c4" {
		t.Errorf("abReportName = %q, want ab-authgate-ab-1a2b3c4", got)
	}
}
