//go:build !linux

package netconn

import (
	"net"
	"syscall"
)

// RawIO is Linux only: NewRawIO returns nil elsewhere, and the caller
// uses the connection itself.
type RawIO struct{ net.Conn }

// NewRawIO returns nil: Linux only.
func NewRawIO(net.Conn) *RawIO { return nil }

func newRawIO(net.Conn, syscall.RawConn) *RawIO { return nil }
