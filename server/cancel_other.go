//go:build !linux

package server

// peerClosed would report whether the TCP socket fd has received the
// peer's FIN or RST; outside Linux it cannot tell (known is false), and the
// client watch stops at the first bytes it sees, as described on
// clientWatch.
func peerClosed(fd uintptr) (closed, known bool) { return false, false }
