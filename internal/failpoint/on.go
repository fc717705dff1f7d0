//go:build failpoints

package failpoint

import (
	"errors"
	"os"
	"syscall"
	"time"
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

var pause = os.Getenv("IM1_FAILPOINT_PAUSE")

// Pause holds the calling goroutine for two seconds when name is the pause
// point the environment asks for, so a test can act in a window that is
// otherwise too short to hit (a second SIGINT during shutdown).
func Pause(name string) {
	if pause != "" && name == pause {
		time.Sleep(2 * time.Second)
	}
}

var fail = os.Getenv("IM1_FAILPOINT_ERR")

// Err returns an injected error when name is the failure point the
// environment asks for: a storage fault where a kill would be too blunt.
func Err(name string) error {
	if fail != "" && name == fail {
		return errors.New("injected failure at " + name + " (IM1_FAILPOINT_ERR)")
	}
	return nil
}
