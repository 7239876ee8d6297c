//go:build !linux

package netconn

import "os"

// FileIdentity returns what identifies fi's file beyond its size and mtime.
// Outside Linux it returns nothing: the fingerprint is size and mtime, and
// a rename over the keys file or a write to it is still seen through the
// directory watch's events naming the file.
func FileIdentity(fi os.FileInfo) (dev, ino uint64, ctime int64) {
	return 0, 0, 0
}
