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

func TestParseCounts(t *testing.T) {
	f := func(in string, want []int, wantErr bool) {
		t.Helper()
		got, err := parseCounts(in)
		if (err != nil) != wantErr || !slices.Equal(got, want) {
			t.Errorf("parseCounts(%q) = %v, %v; want %v, error %v", in, got, err, want, wantErr)
		}
	}
	f("1000,5000,10000", []int{1000, 5000, 10000}, false)
	f(" 20 ", []int{20}, false)
	f("1000,,2", nil, true)
	f("0", nil, true)
	f("many", nil, true)
}

func TestContentEventSize(t *testing.T) {
	body := "data: {\"role\"}\n\ndata: {\"content\":\"Hello\"}\n\ndata: [DONE]\n\n"
	if got, want := contentEventSize([]byte(body)), len("data: {\"content\":\"Hello\"}\n\n"); got != want {
		t.Errorf("contentEventSize = %d, want %d", got, want)
	}
	if got := contentEventSize([]byte("data: [DONE]\n\n")); got != 0 {
		t.Errorf("contentEventSize of a stream without content = %d, want 0", got)
	}
}

func TestMaxStreams(t *testing.T) {
	// This machine's hard limit: a proxy holds 9,800 streams.
	b := &bench{fdLimit: 20000}
	if got := b.maxStreams(); got != 9800 {
		t.Errorf("maxStreams at 20,000 open files = %d, want 9800", got)
	}
}
