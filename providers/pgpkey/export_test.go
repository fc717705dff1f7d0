package pgpkey

// SetFastPath turns the SEIPD v1 fast path on or off and returns a func
// restoring the previous setting (tests only; not for parallel tests).
func SetFastPath(on bool) (restore func()) {
	old := fastPath
	fastPath = on
	return func() { fastPath = old }
}

// UsedFastPath reports whether p reads through the fast path.
func UsedFastPath(p *Plaintext) bool {
	_, ok := p.body.(*fastBody)
	return ok
}
