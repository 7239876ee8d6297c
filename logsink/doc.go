// Package logsink is authgate's access log: request handlers hand it one
// Entry per request, and a single writer goroutine batches the formatted
// lines into a file (or standard output).
//
// # Line formats
//
// FormatText writes SPEC 5.4's line,
//
//	2026-11-27T06:30:22.123456Z | alice | POST /v1/chat/completions | 200
//
// and FormatJSON one JSON object a line with latency, byte counts, upstream
// and request id as well. In both, every byte of a key id, method, path,
// upstream or request id that is a control character, a space, DEL, a
// non-ASCII byte, '|', '"' or '\' is written as %XX (upper-case hex), so a
// client can neither split a line nor forge a field, and every JSON line is
// valid JSON.
//
// # Delivery policy
//
// This is an audit log, so no line is dropped silently:
//
//   - Sink.Write never drops. It copies the line into a buffered channel; when
//     the channel is full, Write blocks until the writer goroutine makes room
//     (back-pressure), and Stats.Waited counts those Writes.
//   - The writer goroutine calls write(2) when Config.BatchBytes are buffered,
//     every Config.FlushInterval, and on Flush, Reopen and Close. A line
//     therefore reaches the file at most FlushInterval after the writer
//     received it.
//   - When write(2) fails, the lines of that batch that did not reach the file
//     are counted in Stats.Failed and reported through Config.ErrorLog, at
//     most one message every 10 s, each naming how many reports were
//     suppressed since the previous one. The batch is then discarded (a
//     failing disk must not grow memory without bound) and the writer keeps
//     running: the next batch tries again. Write still returns nil, and Flush,
//     Reopen and Close return the error.
//   - Close stops accepting lines (Write then returns ErrClosed), writes every
//     line accepted before, fsyncs and closes the file.
package logsink
