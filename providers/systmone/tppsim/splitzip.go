package tppsim

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// splitSignature opens the first part of a split (spanned) zip.
var splitSignature = []byte{'P', 'K', 7, 8}

// maxPart is the part size TPPDDS used when it re-zipped large extracts.
const maxPart = 10 << 20

// splitZip cuts the zip at joined (written with the split signature and
// offsets counted from it) into stem.z01 … parts and stem.zip, as zip4j and
// Info-ZIP `zip -s` do: the central directory goes whole into the last
// part, and its offsets and disk numbers become per-part. Parts are a
// third of the data (at most 10 MiB, at least 64 bytes) so even small
// simulated extracts split. Zip64 archives are not supported here.
func splitZip(joined, dir, stem string, mtime time.Time) error {
	f, err := os.Open(joined)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	const endLen = 22 // zip.Writer writes no comment
	if st.Size() < endLen+int64(len(splitSignature)) {
		return errors.New("split: archive too short")
	}
	end := make([]byte, endLen)
	if _, err := f.ReadAt(end, st.Size()-endLen); err != nil {
		return err
	}
	if le.Uint32(end) != 0x06054b50 || le.Uint16(end[10:]) == 0xffff || le.Uint32(end[16:]) == 0xffffffff {
		return errors.New("split: not a small zip without comment (zip64 is not supported)")
	}
	records := le.Uint16(end[10:])
	cdSize, cdStart := int64(le.Uint32(end[12:])), int64(le.Uint32(end[16:]))
	part := min(max((cdStart+2)/3, 64), maxPart)
	last := int((cdStart - 1) / part) // disk holding the end of the data
	cd := make([]byte, cdSize)
	if _, err := f.ReadAt(cd, cdStart); err != nil {
		return err
	}
	for p := cd; len(p) > 0; {
		if len(p) < 46 || le.Uint32(p) != 0x02014b50 {
			return errors.New("split: bad central directory")
		}
		off := int64(le.Uint32(p[42:]))
		disk := min(int(off/part), last)
		le.PutUint16(p[34:], uint16(disk))
		le.PutUint32(p[42:], uint32(off-int64(disk)*part))
		p = p[46+int(le.Uint16(p[28:]))+int(le.Uint16(p[30:]))+int(le.Uint16(p[32:])):]
	}
	eocd := le.AppendUint32(nil, 0x06054b50)
	eocd = le.AppendUint16(eocd, uint16(last))
	eocd = le.AppendUint16(eocd, uint16(last))
	eocd = le.AppendUint16(eocd, records)
	eocd = le.AppendUint16(eocd, records)
	eocd = le.AppendUint32(eocd, uint32(cdSize))
	eocd = le.AppendUint32(eocd, uint32(cdStart-int64(last)*part))
	eocd = le.AppendUint16(eocd, 0)
	for d := 0; d <= last; d++ {
		name := fmt.Sprintf("%s.z%02d", stem, d+1)
		start, n := int64(d)*part, part
		if d == last {
			name, n = stem+".zip", cdStart-start
		}
		err := writeFile(filepath.Join(dir, name), mtime, func(w *bufio.Writer) error {
			if _, err := io.Copy(w, io.NewSectionReader(f, start, n)); err != nil {
				return err
			}
			if d == last {
				if _, err := w.Write(cd); err != nil {
					return err
				}
				_, err := w.Write(eocd)
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
