package server_test

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/auth"
	"github.com/authgate/authgate/server"
)

// BenchmarkSecurityWrongKeyPrefix runs the gateway's handler on wrong keys
// that share 0, 24 or 47 of their 48 leading characters with the real key
// (same length, same alphabet, so the format check does the same work).
// The key is looked up by its SHA-256 digest, so the three should take the
// same time within noise; a lookup that compared plain keys would grow
// with the shared prefix. Compare with benchstat over -count=5:
//
//	go test -run '^$' -bench SecurityWrongKeyPrefix -count 5 ./server/
func BenchmarkSecurityWrongKeyPrefix(b *testing.B) {
	key := secretKey(b, "sk-bench-")[:48]
	e, ok, err := auth.ParseLine([]byte("alice:"+key), 1)
	if !ok || err != nil {
		b.Fatal(err)
	}
	keys, _ := auth.NewKeySet([]auth.Entry{e})
	g, err := server.New(server.Config{Keys: keys, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	for _, shared := range []int{0, 24, 47} {
		wrong := []byte(key)
		for i := shared; i < len(wrong); i++ {
			wrong[i] = 'x' // not a hex digit: differs from the key from here on
		}
		b.Run("shared="+strconv.Itoa(shared), func(b *testing.B) {
			var req fasthttp.Request
			req.Header.SetMethod("GET")
			req.SetRequestURI("/v1/models")
			req.Header.Set("Authorization", "Bearer "+string(wrong))
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				g.Handler(&ctx)
				if ctx.Response.StatusCode() != fasthttp.StatusUnauthorized {
					b.Fatalf("status %d, want 401", ctx.Response.StatusCode())
				}
			}
		})
	}
}
