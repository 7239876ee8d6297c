package server

import (
	"github.com/authgate/authgate/internal/forwarded"
	"github.com/authgate/authgate/logsink"
)

// AccessLogger receives the gateway's access-log entries, one per request
// (probes excepted), in place of the file sink: set it as
// Config.AccessLogger to send the log to another store. *logsink.Sink
// implements it.
//
// Write is called on the request's goroutine, concurrently from many, after
// the response is decided; it must be safe for concurrent use and should
// not block. The Entry and its byte slices (Method, Path, RequestID) are
// valid only during the call: copy what is kept. An error is logged to
// Config.Logger and the request goes on. Close is called once, by
// Gateway.Close (or Shutdown), and should flush what is buffered; requests
// still running then may call Write concurrently with or after it, which
// may fail, while those that finish after Close returned are not logged.
type AccessLogger interface {
	Write(e *logsink.Entry) error
	Close() error
}

// AccessLogFunc adapts a function to AccessLogger: Write calls f and
// returns nil; Close does nothing. f has AccessLogger.Write's contract.
type AccessLogFunc func(e *logsink.Entry)

// Write calls f(e).
func (f AccessLogFunc) Write(e *logsink.Entry) error {
	f(e)
	return nil
}

// Close does nothing and returns nil.
func (f AccessLogFunc) Close() error { return nil }

// pooledEntry is an Entry handed to a Config.AccessLogger, with room for
// its request id: the caller's is on its stack, which an interface call
// would move to the heap.
type pooledEntry struct {
	e   logsink.Entry
	rid [forwarded.MaxRequestID]byte
}

// writeLog hands e, whose RequestID is requestID, to the access log, if
// any, logging a failure. It allocates nothing: the file sink copies the
// line, and an AccessLogger gets a pooled copy of e.
func (g *Gateway) writeLog(e logsink.Entry, requestID []byte) {
	var err error
	if g.sink != nil {
		line := e // a variable apart from e, so that e never points at requestID
		line.RequestID = requestID
		err = g.sink.Write(&line)
	} else {
		if g.logClosed.Load() {
			return
		}
		p, _ := g.entries.Get().(*pooledEntry)
		if p == nil {
			p = new(pooledEntry)
		}
		p.e = e
		p.e.RequestID = p.rid[:copy(p.rid[:], requestID)]
		err = g.accessLog.Write(&p.e)
		p.e = logsink.Entry{}
		g.entries.Put(p)
	}
	if err != nil {
		g.log.Error("access log write failed", "err", err)
	}
}
