package netconn

import (
	"os"
	"syscall"
)

// FileIdentity returns what identifies fi's file beyond its size and mtime:
// device, inode and ctime. The ctime changes on every write, even one that
// keeps the mtime (rsync -t, cp -p), and cannot be set by the writer.
func FileIdentity(fi os.FileInfo) (dev, ino uint64, ctime int64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0
	}
	return uint64(st.Dev), st.Ino, st.Ctim.Nano()
}
