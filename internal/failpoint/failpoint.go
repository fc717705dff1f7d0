// Package failpoint names the points where crash-consistency tests kill
// im1. In normal builds Hit does nothing and compiles away; built with
// `-tags failpoints`, the environment variable IM1_FAILPOINT=name makes
// the process kill itself with SIGKILL the first time it reaches name.
package failpoint
