package forwarded

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics; what it
// accepts is one masked prefix per item, IPv4 ones not mapped, each of
// which parses back to itself and contains its own address; and its
// errors quote the item at fault.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/8",
		"127.0.0.1, ::1",
		"10.0.0.0/8,192.168.0.0/16, 2001:db8::/32",
		"::ffff:10.0.0.0/104",
		"10.1.2.3/8",
		"fe80::1%eth0",
		"10.0.0.0/8,,",
		"proxy.internal",
		" ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := Parse(s)
		items := strings.Split(s, ",")
		if err != nil {
			for _, item := range items {
				if strings.Contains(err.Error(), strconv.Quote(strings.TrimSpace(item))) {
					return
				}
			}
			t.Fatalf("Parse(%q): error %q names no item", s, err)
		}
		if strings.TrimSpace(s) == "" {
			if len(ps) != 0 {
				t.Fatalf("Parse(%q) = %v, want none", s, ps)
			}
			return
		}
		if len(ps) != len(items) {
			t.Fatalf("Parse(%q): %d prefixes for %d items", s, len(ps), len(items))
		}
		for _, p := range ps {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("Parse(%q): prefix %v", s, p)
			}
			again, err := Parse(p.String())
			if err != nil || len(again) != 1 || again[0] != p {
				t.Fatalf("prefix %v of %q parses back as %v, %v", p, s, again, err)
			}
			if !Trusted(ps).Contains(p.Addr()) {
				t.Fatalf("prefix %v of %q does not contain its address", p, s)
			}
		}
	})
}
