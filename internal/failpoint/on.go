//go:build failpoints

package failpoint

import (
	"os"
	"syscall"
)

// Enabled reports whether this build has failpoints.
const Enabled = true

var want = os.Getenv("IM1_FAILPOINT")

// Hit kills the process, as a power cut or kill -9 would, when name is the
// failpoint the environment asks for.
func Hit(name string) {
	if want != "" && name == want {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
}
