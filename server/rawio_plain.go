//go:build !linux || race

package server

import (
	"runtime"
	"syscall"
)

// rawSockets reports whether sockIO is used: see rawio.go. Under the race
// detector it is, with rawRead and rawWrite the plain system calls, whose
// annotations tell the detector that what was written before a write
// happened before what the peer does after reading it.
const rawSockets = runtime.GOOS == "linux"

// rawRead is read(2) made as the syscall package makes it: see rawio.go.
func rawRead(fd int, p []byte) (int, syscall.Errno) { return errnoOf(syscall.Read(fd, p)) }

// rawWrite is write(2) made as the syscall package makes it: see rawio.go.
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
