package state

import (
	"errors"
	"syscall"
)

// ErrNetworkFS refuses a state database on a network filesystem: SQLite's
// WAL needs shared memory and POSIX locks that NFS and SMB do not give
// reliably (sqlite.org/howtocorrupt.html, faults.md §1.3).
var ErrNetworkFS = errors.New("state on a network filesystem")

// Filesystem magic numbers (statfs f_type) of network filesystems.
var networkMagic = map[int64]string{
	0x6969:     "NFS",
	0xFF534D42: "CIFS",
	0xFE534D42: "SMB2",
	0x517B:     "SMB",
	0x01021997: "9p",
	0x65735546: "FUSE",
	0x73757245: "Coda",
	0x6B414653: "AFS",
	0x5346414F: "OpenAFS",
	0x47504653: "GPFS",
	0x0BD00BD0: "Lustre",
	0x00C36400: "CephFS",
}

// networkFS reports whether dir is on a network filesystem, and which.
func networkFS(dir string) (string, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "", false
	}
	return classifyFS(int64(st.Type))
}

func classifyFS(magic int64) (string, bool) {
	name, ok := networkMagic[magic&0xFFFFFFFF]
	return name, ok
}
