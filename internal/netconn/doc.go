// Package netconn holds everything of authgate that is unsafe or
// platform-specific, so that the rest of the module is neither: the client
// connection wrapper whose deadlines cost nothing on most requests, socket
// reads and writes that keep their goroutine's P, the peeks and TCP_INFO
// probes that tell a quiet connection from a closed one, a file's identity
// for the keys-file watcher, and zero-copy conversions between strings and
// byte slices.
package netconn
