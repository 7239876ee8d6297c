package listen

import (
	"bytes"

	"github.com/authgate/authgate/internal/safelog"
)

// CheckBareLFHead is the check of a plain connection's first read
// (netconn.Options.CheckFirstRead).
func CheckBareLFHead(b []byte) error {
	if bareLFHead(b) {
		return ErrBareLFHead
	}
	return nil
}

// ErrBareLFHead fails the read after a first read whose request head ended
// in a blank line of bare LF (see bareLFHead): fasthttp takes a head to be
// complete only once its bytes hold a CRLFCRLF, and would wait for one
// until ReadTimeout; with the error it answers 400 at once.
var ErrBareLFHead = safelog.Fixed("request head lines end in a bare LF")

// bareLFHead reports whether b, the first bytes of a connection, holds a
// blank line that is not the end of a CRLFCRLF ("\n\n", or "\n\r\n" after
// a bare LF) and no CRLFCRLF: a request head fasthttp would wait on. RFC
// 9112 section 2.2 lets a server accept a bare LF as a line end; fasthttp
// accepts one only in a head that a CRLFCRLF ends.
func bareLFHead(b []byte) bool {
	if bytes.Contains(b, strCRLFCRLF) {
		return false
	}
	for i := bytes.IndexByte(b, '\n'); i >= 0 && i+1 < len(b); {
		switch {
		case b[i+1] == '\n':
			return true
		case b[i+1] == '\r' && i+2 < len(b) && b[i+2] == '\n' && (i == 0 || b[i-1] != '\r'):
			return true
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

var strCRLFCRLF = []byte("\r\n\r\n")
