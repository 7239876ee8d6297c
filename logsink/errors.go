package logsink

import "errors"

// ErrClosed is returned by Write once Close has begun, and by Flush and
// Reopen once Close is writing the last lines (which it does itself).
var ErrClosed = errors.New("logsink: sink closed")

// ErrNilEntry is returned by Write for a nil *Entry.
var ErrNilEntry = errors.New("logsink: nil entry")

// ErrUnknownFormat is wrapped by the error ParseFormat returns for a name
// other than "text" or "json".
var ErrUnknownFormat = errors.New("logsink: unknown access log format")

// ErrInvalidConfig is wrapped by the error New returns for a Config it
// rejects; the message names the field.
var ErrInvalidConfig = errors.New("logsink: invalid config")
