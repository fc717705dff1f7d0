//go:build !failpoints

package failpoint

// Hit is a no-op outside test builds.
func Hit(string) {}

// Enabled reports whether this build has failpoints.
const Enabled = false

// Pause is a no-op outside test builds.
func Pause(string) {}

// Err never fails outside test builds.
func Err(string) error { return nil }
