package server_test

import (
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// waitDelivered waits until the peer's kernel has acknowledged every byte
// written on c (a TCP connection, or a TLS one over TCP): on loopback, the
// bytes are then in the peer socket's receive queue, readable. It reports
// an error (it may run on a goroutine other than the test's) if they are
// not within waitLimit.
func waitDelivered(t *testing.T, c net.Conn) {
	t.Helper()
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = nc.NetConn()
	}
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Error(err)
		return
	}
	var n int
	var ierr error
	delivered := within(func() bool {
		if err := raw.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil {
			ierr = err
		}
		return ierr != nil || n == 0
	})
	if ierr != nil || !delivered {
		t.Errorf("bytes written not acknowledged by the peer within %v: %d left, %v", waitLimit, n, ierr)
	}
}
