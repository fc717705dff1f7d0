//go:build race

package inflate

// The race detector slows the byte-at-a-time decoding tests tenfold;
// under it they run on smaller inputs.
func init() { raceEnabled = true }
