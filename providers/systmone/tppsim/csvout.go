package tppsim

import (
	"bufio"
	"strings"

	"golang.org/x/text/encoding/charmap"
)

// csvOut writes one table in the declared dialect, encoded as
// Windows-1252, with CRLF line ends as a Windows client writes them.
// Values are set by column name and emitted in the declared column order,
// so the report config alone decides which columns a file has.
type csvOut struct {
	w     *bufio.Writer
	delim byte
	quote byte // 0: none
	cols  []string
	idx   map[string]int
	vals  []string
}

func newCSVOut(w *bufio.Writer, delim, quote byte, cols []string) *csvOut {
	c := &csvOut{w: w, delim: delim, quote: quote, cols: cols, idx: make(map[string]int, len(cols)), vals: make([]string, len(cols))}
	for i, col := range cols {
		c.idx[col] = i
	}
	return c
}

func (c *csvOut) has(col string) bool { _, ok := c.idx[col]; return ok }

func (c *csvOut) set(col, val string) {
	if i, ok := c.idx[col]; ok {
		c.vals[i] = val
	}
}

func (c *csvOut) header() {
	copy(c.vals, c.cols)
	c.emit()
}

// emit writes the current row and clears it. With a qualifier every field
// is quoted (SR's QuoteMode.ALL); without one, characters that would break
// the row are replaced by spaces, as no reader could tell them apart.
func (c *csvOut) emit() {
	for i, v := range c.vals {
		if i > 0 {
			c.w.WriteByte(c.delim)
		}
		if c.quote != 0 {
			c.w.WriteByte(c.quote)
			c.write(strings.ReplaceAll(v, string(c.quote), string([]byte{c.quote, c.quote})))
			c.w.WriteByte(c.quote)
		} else {
			c.write(strings.Map(func(r rune) rune {
				if r == rune(c.delim) || r == '\r' || r == '\n' {
					return ' '
				}
				return r
			}, v))
		}
		c.vals[i] = ""
	}
	c.w.WriteString("\r\n")
}

// write encodes s as Windows-1252; a character it lacks becomes '?', as
// an ANSI export would write it.
func (c *csvOut) write(s string) {
	for _, r := range s {
		if r < 0x80 {
			c.w.WriteByte(byte(r))
			continue
		}
		b, ok := charmap.Windows1252.EncodeRune(r)
		if !ok {
			b = '?'
		}
		c.w.WriteByte(b)
	}
}
