package sftpsite

import "time"

// ReadParams returns the current session's read request size and the
// number of requests in flight per file (zeros with no session).
func (c *Client) ReadParams() (size, conc int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return 0, 0
	}
	return c.cur.reqSize, c.cur.conc
}

// WithoutRaw makes Fetch read through pkg/sftp only.
func WithoutRaw(cfg Config) Config {
	cfg.noRaw = true
	return cfg
}

// Reads counts the fetch attempts that read through raw channels and
// through pkg/sftp.
func (c *Client) Reads() (raw, sftp int64) { return c.rawReads.Load(), c.sftpReads.Load() }

// RawChannels reports whether the current session reads through raw
// channels, and how many it keeps idle.
func (c *Client) RawChannels() (on bool, idle int) {
	c.mu.Lock()
	s := c.cur
	c.mu.Unlock()
	if s == nil {
		return false, 0
	}
	s.rawMu.Lock()
	defer s.rawMu.Unlock()
	return !s.rawOff, len(s.rawIdle)
}

// SetRawInitTimeout bounds a raw channel's INIT by d until restore.
func SetRawInitTimeout(d time.Duration) (restore func()) {
	old := rawInitTimeout
	rawInitTimeout = d
	return func() { rawInitTimeout = old }
}
