package netconn

import (
	"encoding/binary"
	"syscall"
)

// tcpEstablished is Linux's TCP_ESTABLISHED, the first byte of struct
// tcp_info (tcpi_state).
const tcpEstablished = 1

// PeerClosed reports whether the TCP socket fd has received the peer's FIN
// or RST: it has left ESTABLISHED (CLOSE_WAIT after a FIN, CLOSE after an
// RST; the gateway has not closed its side while it watches). known is
// false if the kernel could not say.
func PeerClosed(fd uintptr) (closed, known bool) {
	// The first 4 bytes of struct tcp_info: tcpi_state, tcpi_ca_state,
	// tcpi_retransmits, tcpi_probes. Read as an int32 in native byte order,
	// so its first byte in memory is tcpi_state.
	v, err := syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_INFO)
	if err != nil {
		return false, false
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(v))
	return b[0] != tcpEstablished, true
}
