//go:build !linux || race

package netconn

import (
	"runtime"
	"syscall"
)

// useSockIO reports whether NewSockIO makes a SockIO: see sockio.go. Under
// the race detector it does, with rawRead and rawWrite the syscall
// package's calls, whose annotations tell the detector that what was
// written before a write happened before what the peer does after reading
// it; so the race detector sees SockIO's logic, though not its raw calls.
const useSockIO = runtime.GOOS == "linux"

// rawRead is read(2) made as the syscall package makes it: see sockio.go.
func rawRead(fd int, p []byte) (int, syscall.Errno) { return errnoOf(syscall.Read(fd, p)) }

// rawWrite is write(2) made as the syscall package makes it: see sockio.go.
func rawWrite(fd int, p []byte) (int, syscall.Errno) { return errnoOf(syscall.Write(fd, p)) }

func errnoOf(n int, err error) (int, syscall.Errno) {
	if err != nil {
		errno, ok := err.(syscall.Errno)
		if !ok {
			errno = syscall.EIO
		}
		return 0, errno
	}
	return n, 0
}
