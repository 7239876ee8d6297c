package adminguard

import (
	"context"
	"net"
	"sync"

	"github.com/valyala/fasthttp"
)

// Servers is the admin listener's serving state: one fasthttp server,
// made by the first Serve, for every admin listener, until Stop. The zero
// value is ready.
type Servers struct {
	mu     sync.Mutex
	srv    *fasthttp.Server // nil until the first Serve
	lns    []net.Listener   // listeners being served
	closed bool
}

// Serve serves ln with the admin server, made by newServer on the first
// call, until Stop. It returns nil after Stop, else the listener's error;
// called after Stop, it closes ln and returns nil at once.
func (s *Servers) Serve(ln net.Listener, newServer func() *fasthttp.Server) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	if s.srv == nil {
		s.srv = newServer()
	}
	srv := s.srv
	s.lns = append(s.lns, ln)
	s.mu.Unlock()

	err := srv.Serve(ln)
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil
	}
	return err
}

// Stop closes the admin listeners and idle admin connections; admin
// requests in flight finish on their own.
func (s *Servers) Stop() {
	s.mu.Lock()
	s.closed = true
	srv, lns := s.srv, s.lns
	s.lns = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	for _, ln := range lns {
		ln.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv.ShutdownWithContext(ctx) // closes idle connections; does not wait
}
