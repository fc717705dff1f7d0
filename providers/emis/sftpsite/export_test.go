package sftpsite

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
