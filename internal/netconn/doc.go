// Package netconn holds everything of authgate that is unsafe or
// platform-specific, so that the rest of the module is neither: the client
// connection wrapper (connection limits, the first read's check, a RawConn
// made once), the Parker that holds idle keep-alive connections on an
// epoll set of its own instead of a goroutine each (Linux), the peeks and
// TCP_INFO probes that tell a quiet connection from a closed one, a file's
// identity for the keys-file watcher, and zero-copy conversions between
// strings and byte slices. Reads, writes and deadlines are the net
// package's own: raw system calls and coarse deadlines were measured and
// did not pay (docs/development.md#socket-mechanisms).
package netconn
