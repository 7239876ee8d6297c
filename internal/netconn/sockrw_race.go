//go:build linux && race

package netconn

import "syscall"

// sockRW is the read (SYS_READ) or write (SYS_WRITE) of a socket's RawIO,
// and of ReadFD and WriteFD. Under the race detector it is syscall's Read
// or Write, not a raw call: those tell the detector that what one
// goroutine wrote before a write to a socket happened before what another
// reads after reading it (as the net package's reads and writes do), and
// a raw call does not, so the detector would report races that are none.
// The code around it is the same in both builds.
func sockRW(trap uintptr, fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		var (
			n   int
			err error
		)
		if trap == syscall.SYS_READ {
			n, err = syscall.Read(fd, b)
		} else {
			n, err = syscall.Write(fd, b)
		}
		switch err {
		case nil:
			return n, nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, ErrWouldBlock
		}
		return 0, err
	}
}
