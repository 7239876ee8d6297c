package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/authgate/authgate/bench/internal/rawhttp"
)

// IdleConns are connections that have each sent one request, had its
// answer, and are held open, idle, as keep-alive clients between two
// requests: for the memory a server spends on each. Close closes them.
type IdleConns struct {
	conns []net.Conn
}

// OpenIdle opens n connections to addr, workers at a time, and on each
// sends req and reads its response, which must have status. On an error
// it closes every connection it opened and returns the first error.
func OpenIdle(ctx context.Context, addr string, req []byte, status, n, workers int) (*IdleConns, error) {
	ic := &IdleConns{conns: make([]net.Conn, n)}
	var (
		mu       sync.Mutex
		firstErr error
		next     int
		wg       sync.WaitGroup
	)
	take := func() int {
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil || ctx.Err() != nil || next == n {
			return -1
		}
		next++
		return next - 1
	}
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := take(); i >= 0; i = take() {
				c, err := openOne(addr, req, status)
				if err != nil {
					fail(fmt.Errorf("idle connection %d of %d: %w", i+1, n, err))
					return
				}
				ic.conns[i] = c
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		ic.Close()
		return nil, firstErr
	}
	return ic, nil
}

// openOne opens a connection to addr and makes the request req on it.
func openOne(addr string, req []byte, status int) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	r, err := rawhttp.ReadResponse(bufio.NewReaderSize(c, 4<<10), false, nil)
	switch {
	case err != nil:
	case r.Status != status:
		err = fmt.Errorf("status %d, want %d", r.Status, status)
	case r.Close:
		err = errors.New("the server closes the connection after its response")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// Len returns the number of connections.
func (ic *IdleConns) Len() int { return len(ic.conns) }

// Open returns how many of the connections the server still holds open:
// those where a peek that does not wait finds nothing to read (or bytes)
// rather than the end of the connection or an error.
func (ic *IdleConns) Open() int {
	n := 0
	var b [1]byte
	for _, c := range ic.conns {
		raw, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			continue
		}
		open := false
		raw.Control(func(fd uintptr) {
			k, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			open = k > 0 || errors.Is(err, syscall.EAGAIN)
		})
		if open {
			n++
		}
	}
	return n
}

// Close closes every connection.
func (ic *IdleConns) Close() {
	for _, c := range ic.conns {
		if c != nil {
			c.Close()
		}
	}
}
