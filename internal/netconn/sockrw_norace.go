//go:build linux && !race

package netconn

// sockRW is the read (SYS_READ) or write (SYS_WRITE) of a socket's RawIO,
// and of ReadFD and WriteFD: a raw system call (see rawRW).
func sockRW(trap uintptr, fd int, b []byte) (int, error) { return rawRW(trap, fd, b) }
