package netconn

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// RawConnOf returns c's RawConn, or nil if it has none; a *tls.Conn's is
// that of the connection beneath it. It allocates.
func RawConnOf(c net.Conn) syscall.RawConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// Peeked is what a look at a socket's receive queue found.
type Peeked uint8

const (
	// Quiet: open, nothing to read (recv would block).
	Quiet Peeked = iota
	// Data: bytes are waiting.
	Data
	// Closed: the peer ended the stream (FIN), reset it, or the socket
	// failed.
	Closed
)

// Peek looks at non-blocking socket fd's receive queue without taking
// anything from it: for a RawConn.Read callback.
func Peek(fd uintptr) Peeked {
	var buf [1]byte
	n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case errors.Is(err, syscall.EAGAIN):
		return Quiet
	case err != nil || n == 0:
		return Closed
	}
	return Data
}
