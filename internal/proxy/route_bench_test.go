package proxy

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkPick times the choice of an upstream: Serve's among every
// upstream, beside ServeModel's, which first resolves the model (an
// alias, or a model of the 200 listed) and looks up its pool.
func BenchmarkPick(b *testing.B) {
	var pool1, pool2 []string
	for i := range 100 {
		pool1 = append(pool1, fmt.Sprintf("org/model-%d", i))
		pool2 = append(pool2, fmt.Sprintf("org/other-%d", i))
	}
	m1, m2 := " models="+strings.Join(pool1, "|"), " models="+strings.Join(pool2, "|")
	p, err := New(Config{
		Upstreams: []string{"http://a" + m1, "http://b" + m1, "http://c" + m2, "http://d" + m2},
		Aliases:   map[string]string{"gpt-4o": "org/other-7"},
	})
	if err != nil {
		b.Fatal(err)
	}
	run := func(name string, choose func() *upstream) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if choose() == nil {
						b.Fatal("no upstream")
					}
				}
			})
		})
	}
	run("Serve", func() *upstream { return pick(p.table.Load().all, nil) })
	model, alias := []byte("org/model-42"), []byte("gpt-4o")
	run("ServeModel", func() *upstream {
		_, served, _ := p.Resolve(model)
		ups, _ := p.table.Load().pool(served)
		return pick(ups, nil)
	})
	run("ServeModel-alias", func() *upstream {
		_, served, _ := p.Resolve(alias)
		ups, _ := p.table.Load().pool(served)
		return pick(ups, nil)
	})
}
