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
