//go:build !linux

package netconn

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Parker parks idle connections on Linux only (epoll); elsewhere
// NewParker returns an error, and a nil *Parker parks nothing.
type Parker struct{}

type parkState struct{}

// NewParker returns an error: connections park on Linux only.
func NewParker(after, idleTimeout time.Duration, serve func(net.Conn)) (*Parker, error) {
	return nil, fmt.Errorf("netconn: idle connections park on Linux only: %w", errors.ErrUnsupported)
}

// Parked returns 0.
func (p *Parker) Parked() int { return 0 }

// Close does nothing.
func (p *Parker) Close() {}

// Park returns false: nothing parks.
func (p *Parker) Park(net.Conn) bool { return false }

func (p *Parker) park(*Conn) (parked, refused bool) { return false, false }
func (p *Parker) serveAgain(*Conn) bool             { return false }
func (p *Parker) forget(*Conn)                      {}

func (c *Conn) parkingRead(b []byte) (int, error) { return c.Conn.Read(b) }
func (c *Conn) setIdleDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }
func (c *Conn) entered()                          {}
