//go:build !linux

package netconn

// PeerClosed would report whether the TCP socket fd has received the
// peer's FIN or RST; outside Linux it cannot tell (known is false).
func PeerClosed(fd uintptr) (closed, known bool) { return false, false }
