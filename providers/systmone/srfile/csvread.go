package srfile

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/encoding/charmap"
)

// maxRecord bounds one physical line of the small files read here
// (manifest, SROrganisation), so hostile input cannot grow memory.
const maxRecord = 1 << 20

// records reads delimited text one record at a time. quote is '"' for
// RFC 4180 quoting, 0 for none (fields are split at every delimiter).
type records struct {
	csv   *csv.Reader
	sc    *bufio.Scanner
	delim string
	line  int
}

func newRecords(r io.Reader, delim, quote byte) (*records, error) {
	switch quote {
	case '"':
		if delim == '"' || delim == '\r' || delim == '\n' || delim == 0 || delim >= 0x80 {
			return nil, fmt.Errorf("unusable delimiter %q", delim)
		}
		cr := csv.NewReader(r)
		cr.Comma = rune(delim)
		cr.FieldsPerRecord = -1
		cr.ReuseRecord = true
		return &records{csv: cr}, nil
	case 0:
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), maxRecord)
		return &records{sc: sc, delim: string(delim)}, nil
	}
	return nil, fmt.Errorf("unsupported text qualifier %q", quote)
}

// next returns the next record, io.EOF at the end. Blank lines are skipped.
func (r *records) next() ([]string, error) {
	if r.csv != nil {
		rec, err := r.csv.Read()
		if err == nil {
			r.line, _ = r.csv.FieldPos(0)
		}
		return rec, err
	}
	for r.sc.Scan() {
		r.line++
		l := strings.TrimSuffix(r.sc.Text(), "\r")
		if l == "" {
			continue
		}
		return strings.Split(l, r.delim), nil
	}
	if err := r.sc.Err(); err != nil {
		return nil, err
	}
	return nil, io.EOF
}

// decode1252 turns Windows-1252 bytes into UTF-8 as they stream. A UTF-8
// byte-order mark, which some Windows tools add, is dropped first.
func decode1252(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		br.Discard(3)
	}
	return charmap.Windows1252.NewDecoder().Reader(br)
}

// sniffDelimiter picks the delimiter of a header line: whichever of the
// delimiters a strategic report may declare occurs most often in it.
func sniffDelimiter(header []byte) byte {
	best, n := byte(','), 0
	for _, d := range []byte{',', '|', '\t', ';'} {
		if c := bytes.Count(header, []byte{d}); c > n {
			best, n = d, c
		}
	}
	return best
}

// headerIndex maps column names (trimmed, case-insensitive) to positions.
func headerIndex(header []string) (map[string]int, error) {
	idx := make(map[string]int, len(header))
	for i, h := range header {
		k := strings.ToLower(strings.TrimSpace(h))
		if _, dup := idx[k]; dup && k != "" {
			return nil, fmt.Errorf("column %s appears twice in the header", strings.TrimSpace(h))
		}
		idx[k] = i
	}
	return idx, nil
}

var errNoHeader = errors.New("empty file, no header")
