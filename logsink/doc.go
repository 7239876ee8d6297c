// Package logsink is authgate's access log: request handlers hand it one
// Entry per request, whose formatted line is appended to a batch, and a
// single writer goroutine writes the batches to a file (or standard
// output).
//
// # Line formats
//
// FormatText writes the line of docs/operations.md#access-log,
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
//   - Sink.Write never drops a line; its buffer-full policy is
//     back-pressure. It copies the line into the current batch, which it
//     hands whole to the writer goroutine once it holds Config.BatchBytes
//     or the queue is full (so the writer wakes once a batch, not once a
//     line). At most Config.BufferLines lines are queued, in the current
//     batch and in batches handed over but not yet taken by the writer;
//     when that many are, Write blocks until the writer makes room, and
//     Stats.Waited counts those Writes.
//   - The writer goroutine calls write(2) when it holds Config.BatchBytes,
//     and every Config.FlushInterval, on Flush, on Reopen and on Close,
//     taking the current batch however full. A line therefore reaches
//     write(2) at most FlushInterval after its Write while writes succeed.
//   - When write(2) fails (disk full, I/O error), the lines it did not
//     write stay in memory, in order, and the writer retries them on every
//     tick (FlushInterval) and on Flush, so writing resumes by itself when
//     space returns. A short write is continued from its first unwritten
//     byte, so every line reaches the file once and whole; only when the
//     file changes in between (Reopen, or a removed file reopened) is a
//     line cut short in the old file written whole to the new one.
//     Meanwhile Write keeps accepting lines (requests are served) and the
//     writer keeps taking them, up to Config.RetryBytes (16 MiB by
//     default) waiting in memory; lines arriving beyond that bound are
//     dropped and counted in Stats.Failed. Stats.WriteErrors counts the
//     failed writes and Stats.Pending the lines waiting. Failures are
//     reported through Config.ErrorLog at most once every 10 s, each
//     message counting the failures and dropped lines since the previous
//     one, and a message marks the recovery. Write still returns nil, and
//     Flush, Reopen and Close return the error. Close tries once more, and
//     counts what it still cannot write in Stats.Failed.
//   - At most once a second, before a write, the writer checks that the
//     file at the path is still the one it writes to (os.SameFile). If the
//     file was removed or renamed away and no Reopen came, it reopens the
//     path (creating the file), logs it, and counts it in Stats.Reopened,
//     so lines go to a deleted file for about a second at most (those
//     lines are gone with the file, like the ones written before its
//     removal).
//   - Close stops accepting lines (Write then returns ErrClosed), writes every
//     line accepted before, fsyncs and closes the file.
package logsink
