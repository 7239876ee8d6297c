package proc

import (
	"os"
	"testing"
)

func TestStatFields(t *testing.T) {
	f := statFields([]byte("123 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13\n"))
	if len(f) < 15 || f[1] != "a (b) c" || f[2] != "S" || f[13] != "11" || f[14] != "12" {
		t.Errorf("statFields: %q", f)
	}
	if CPU(os.Getpid()) < 0 {
		t.Error("negative CPU time")
	}
}

func TestParseVmRSS(t *testing.T) {
	f := func(status string, want int64) {
		t.Helper()
		if got := parseVmRSS([]byte(status)); got != want {
			t.Errorf("parseVmRSS(%q) = %d, want %d", status, got, want)
		}
	}
	f("Name:\tnginx\nVmHWM:\t    9000 kB\nVmRSS:\t    8264 kB\nRssAnon:\t 1 kB\n", 8264<<10)
	f("Name:\tx\nVmRSS:\t12 kB", 12<<10)
	f("Name:\tzombie\nState:\tZ (zombie)\n", 0)
	f("Name:\tx\nVmRSS:\tlots\n", 0)
	if RSS(os.Getpid()) <= 0 {
		t.Error("no RSS for this process")
	}
}
