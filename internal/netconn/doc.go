// Package netconn holds everything of authgate that is unsafe or
// platform-specific, so that the rest of the module is neither: the client
// connection wrapper (connection limits, the first read's check, a RawConn
// made once), the Parker that holds idle keep-alive connections on an
// epoll set of its own instead of a goroutine each (Linux), the peeks and
// TCP_INFO probes that tell a quiet connection from a closed one, a file's
// identity for the keys-file watcher, and zero-copy conversions between
// strings and byte slices. A socket's reads and writes are raw system
// calls made under the net package's own locks, deadlines and poller
// (RawIO): the net package's calls wake the runtime's monitor thread in a
// process that is idle between bursts, as a gateway relaying streams is
// (docs/development.md#raw-socket-reads-and-writes-again). Deadlines
// are the net package's own.
package netconn
