//go:build !linux

package netconn

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Poller is an epoll set, on Linux only: elsewhere NewPoller returns an
// error, and the stream relay is off.
type Poller struct{}

// Token identifies a socket to its Poller's user.
type Token struct {
	Index int32
	Gen   uint32
}

// PollEvent is what Wait reports of one socket, or Wake (Woken).
type PollEvent struct {
	Token                             Token
	Readable, Writable, Hangup, Woken bool
}

// What a socket is waited for.
const (
	WaitRead = 1 << iota
	WaitWrite
	WaitHangup
	WaitOnce
)

// ErrWouldBlock is what ReadFD and WriteFD return for a socket that has
// nothing to read, or no room to write.
var ErrWouldBlock = errors.New("netconn: the operation would block")

var errNoPoller = fmt.Errorf("netconn: event loops run on Linux only: %w", errors.ErrUnsupported)

// NewPoller returns an error: Linux only.
func NewPoller(int) (*Poller, error) { return nil, errNoPoller }

func (p *Poller) Add(int, Token, int) error                { return errNoPoller }
func (p *Poller) Modify(int, Token, int) error             { return errNoPoller }
func (p *Poller) Remove(int)                               {}
func (p *Poller) Wait([]PollEvent, time.Time) (int, error) { return 0, errNoPoller }
func (p *Poller) Wake()                                    {}
func (p *Poller) Close()                                   {}

// SocketFD returns an error: Linux only.
func SocketFD(syscall.RawConn) (int, error) { return -1, errNoPoller }

func ReadFD(int, []byte) (int, error)  { return 0, errNoPoller }
func WriteFD(int, []byte) (int, error) { return 0, errNoPoller }
