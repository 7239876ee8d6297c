//go:build linux && !race

package netconn

import (
	"syscall"
	"unsafe"
)

// useSockIO reports whether NewSockIO makes a SockIO: see sockio.go.
const useSockIO = true

// rawRead is read(2) made with syscall.RawSyscall, for a non-blocking
// descriptor only: see sockio.go.
func rawRead(fd int, p []byte) (int, syscall.Errno) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(r), 0
}

// rawWrite is write(2) made with syscall.RawSyscall, for a non-blocking
// descriptor only: see sockio.go.
func rawWrite(fd int, p []byte) (int, syscall.Errno) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(r), 0
}
