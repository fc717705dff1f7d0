package srfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// A split (PKWARE "spanned") archive is one zip stream cut into parts. The
// first part starts with a 4-byte split signature; every offset in the
// central directory is relative to the start of the part ("disk") it
// names. archive/zip knows nothing of disks, so joinSplit presents the
// concatenated parts followed by a rewritten central directory whose
// offsets are absolute, with every disk number zero. archive/zip then does
// the rest (decompression, CRC and size checks) as for any zip.

const (
	sigSplit     = 0x08074b50
	sigCentral   = 0x02014b50
	sigEnd       = 0x06054b50
	sigEnd64     = 0x06064b50
	sigLocator64 = 0x07064b50

	endLen       = 22
	locator64Len = 20
	end64Len     = 56
	centralLen   = 46
	zip64Extra   = 0x0001

	maxCentralDir = 64 << 20
)

type disk struct {
	r    io.ReaderAt
	size int64
}

type endRecord struct {
	disk, cdDisk    uint32
	records, cdSize uint64
	cdOffset        uint64
	zip64           bool
	locDisk         uint32 // where the zip64 end record is
	locOffset       uint64
}

// readEOCD finds the end of central directory record in the last part.
func readEOCD(r io.ReaderAt, size int64) (*endRecord, error) {
	n := min(size, endLen+0xffff)
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, size-n); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	at := -1
	for i := len(buf) - endLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(buf[i:]) == sigEnd &&
			i+endLen+int(binary.LittleEndian.Uint16(buf[i+20:])) <= len(buf) {
			at = i
			break
		}
	}
	if at < 0 {
		return nil, errors.New("not a zip file: no end of central directory")
	}
	b := buf[at:]
	e := &endRecord{
		disk:     uint32(binary.LittleEndian.Uint16(b[4:])),
		cdDisk:   uint32(binary.LittleEndian.Uint16(b[6:])),
		records:  uint64(binary.LittleEndian.Uint16(b[10:])),
		cdSize:   uint64(binary.LittleEndian.Uint32(b[12:])),
		cdOffset: uint64(binary.LittleEndian.Uint32(b[16:])),
	}
	if at >= locator64Len {
		l := buf[at-locator64Len:]
		if binary.LittleEndian.Uint32(l) == sigLocator64 {
			e.zip64 = true
			e.locDisk = binary.LittleEndian.Uint32(l[4:])
			e.locOffset = binary.LittleEndian.Uint64(l[8:])
			total := binary.LittleEndian.Uint32(l[16:])
			if total == 0 {
				return nil, errors.New("zip64 locator counts no disks")
			}
			e.disk = total - 1
		}
	}
	return e, nil
}

// concat is the parts read as one stream.
type concat struct {
	parts  []io.ReaderAt
	starts []int64 // offset of each part; one extra entry holds the total
}

func newConcat(parts []io.ReaderAt, sizes []int64) *concat {
	c := &concat{parts: parts, starts: make([]int64, len(sizes)+1)}
	for i, s := range sizes {
		c.starts[i+1] = c.starts[i] + s
	}
	return c
}

func (c *concat) size() int64 { return c.starts[len(c.starts)-1] }

func (c *concat) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	n := 0
	for len(p) > 0 {
		if off >= c.size() {
			return n, io.EOF
		}
		i := sort.Search(len(c.parts), func(i int) bool { return c.starts[i+1] > off }) // part holding off
		rel := off - c.starts[i]
		want := min(int64(len(p)), c.starts[i+1]-off)
		m, err := c.parts[i].ReadAt(p[:want], rel)
		n += m
		off += int64(m)
		p = p[m:]
		if err != nil && !(errors.Is(err, io.EOF) && int64(m) == want) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // a part shrank under us
			}
			return n, err
		}
	}
	return n, nil
}

// joinSplit returns a reader over the parts followed by a central
// directory with absolute offsets, and its size.
func joinSplit(disks []disk, e *endRecord, lim Limits) (io.ReaderAt, int64, error) {
	var rs []io.ReaderAt
	var sizes []int64
	for _, d := range disks {
		rs = append(rs, d.r)
		sizes = append(sizes, d.size)
	}
	c := newConcat(rs, sizes)
	abs := func(disk uint32, off uint64) (int64, error) {
		if int(disk) >= len(disks) || off > uint64(disks[disk].size) {
			return 0, fmt.Errorf("offset %d on disk %d is outside the archive", off, disk+1)
		}
		return c.starts[disk] + int64(off), nil
	}
	if e.zip64 {
		at, err := abs(e.locDisk, e.locOffset)
		if err != nil {
			return nil, 0, err
		}
		b := make([]byte, end64Len)
		if _, err := c.ReadAt(b, at); err != nil || binary.LittleEndian.Uint32(b) != sigEnd64 {
			return nil, 0, errors.New("zip64 end of central directory not found")
		}
		e.cdDisk = binary.LittleEndian.Uint32(b[20:])
		e.records = binary.LittleEndian.Uint64(b[32:])
		e.cdSize = binary.LittleEndian.Uint64(b[40:])
		e.cdOffset = binary.LittleEndian.Uint64(b[48:])
	}
	if e.records > uint64(lim.MaxEntries) {
		return nil, 0, fmt.Errorf("%d entries, more than %d", e.records, lim.MaxEntries)
	}
	if e.cdSize > maxCentralDir {
		return nil, 0, fmt.Errorf("central directory of %d bytes is too large", e.cdSize)
	}
	cdStart, err := abs(e.cdDisk, e.cdOffset)
	if err != nil {
		return nil, 0, err
	}
	if cdStart+int64(e.cdSize) > c.size() {
		return nil, 0, errors.New("central directory runs past the end of the archive")
	}
	cd := make([]byte, e.cdSize)
	if _, err := c.ReadAt(cd, cdStart); err != nil {
		return nil, 0, err
	}
	var out bytes.Buffer
	var count uint64
	for len(cd) > 0 {
		rec, rest, err := rewriteCentral(cd, abs)
		if err != nil {
			return nil, 0, fmt.Errorf("central directory entry %d: %w", count+1, err)
		}
		out.Write(rec)
		cd = rest
		count++
	}
	if count != e.records {
		return nil, 0, fmt.Errorf("central directory holds %d entries, the end record says %d", count, e.records)
	}
	writeEnd(&out, count, uint64(c.size()))
	tail := bytes.NewReader(out.Bytes())
	all := newConcat([]io.ReaderAt{c, tail}, []int64{c.size(), tail.Size()})
	return all, all.size(), nil
}

// rewriteCentral copies the first central directory record of b with an
// absolute local header offset, disk zero and a fresh zip64 extra field
// carrying whichever values do not fit in 32 bits.
func rewriteCentral(b []byte, abs func(uint32, uint64) (int64, error)) (rec, rest []byte, err error) {
	le := binary.LittleEndian
	if len(b) < centralLen || le.Uint32(b) != sigCentral {
		return nil, nil, errors.New("bad signature")
	}
	nameLen, extraLen, commentLen := int(le.Uint16(b[28:])), int(le.Uint16(b[30:])), int(le.Uint16(b[32:]))
	end := centralLen + nameLen + extraLen + commentLen
	if len(b) < end {
		return nil, nil, errors.New("truncated")
	}
	csize, usize := uint64(le.Uint32(b[20:])), uint64(le.Uint32(b[24:]))
	diskNo, off := uint32(le.Uint16(b[34:])), uint64(le.Uint32(b[42:]))
	name := b[centralLen : centralLen+nameLen]
	extra := b[centralLen+nameLen : centralLen+nameLen+extraLen]
	comment := b[centralLen+nameLen+extraLen : end]
	var kept []byte
	for len(extra) >= 4 {
		id, n := le.Uint16(extra), int(le.Uint16(extra[2:]))
		if len(extra) < 4+n {
			return nil, nil, errors.New("truncated extra field")
		}
		field := extra[4 : 4+n]
		if id == zip64Extra {
			// Values appear only for fields that are maxed out, in order.
			next := func(v *uint64, width int) error {
				if len(field) < width {
					return errors.New("short zip64 extra field")
				}
				if width == 8 {
					*v = le.Uint64(field)
				} else {
					*v = uint64(le.Uint32(field))
				}
				field = field[width:]
				return nil
			}
			var d uint64
			for _, s := range []struct {
				v     *uint64
				maxed bool
				width int
			}{{&usize, usize == 0xffffffff, 8}, {&csize, csize == 0xffffffff, 8}, {&off, off == 0xffffffff, 8}, {&d, diskNo == 0xffff, 4}} {
				if s.maxed {
					if err := next(s.v, s.width); err != nil {
						return nil, nil, err
					}
				}
			}
			if diskNo == 0xffff {
				diskNo = uint32(d)
			}
		} else {
			kept = append(kept, extra[:4+n]...)
		}
		extra = extra[4+n:]
	}
	a, err := abs(diskNo, off)
	if err != nil {
		return nil, nil, err
	}
	var z64 []byte
	put32 := func(v uint64) uint32 {
		if v >= 0xffffffff {
			z64 = le.AppendUint64(z64, v)
			return 0xffffffff
		}
		return uint32(v)
	}
	fixed := bytes.Clone(b[:centralLen])
	le.PutUint32(fixed[24:], put32(usize))
	le.PutUint32(fixed[20:], put32(csize))
	le.PutUint32(fixed[42:], put32(uint64(a)))
	le.PutUint16(fixed[34:], 0)
	if z64 != nil {
		kept = append(le.AppendUint16(le.AppendUint16(kept, zip64Extra), uint16(len(z64))), z64...)
	}
	if len(kept) > 0xffff {
		return nil, nil, errors.New("extra fields too long")
	}
	le.PutUint16(fixed[30:], uint16(len(kept)))
	rec = append(append(append(fixed, name...), kept...), comment...)
	return rec, b[end:], nil
}

// writeEnd appends the end records for a central directory that is
// already in out and starts at cdOffset, on a single disk.
func writeEnd(out *bytes.Buffer, records, cdOffset uint64) {
	le := binary.LittleEndian
	cdSize := uint64(out.Len())
	var b []byte
	if records >= 0xffff || cdSize >= 0xffffffff || cdOffset >= 0xffffffff {
		end64At := cdOffset + cdSize
		b = le.AppendUint32(b, sigEnd64)
		b = le.AppendUint64(b, end64Len-12)
		b = le.AppendUint16(b, 45)
		b = le.AppendUint16(b, 45)
		b = le.AppendUint32(b, 0)
		b = le.AppendUint32(b, 0)
		b = le.AppendUint64(b, records)
		b = le.AppendUint64(b, records)
		b = le.AppendUint64(b, cdSize)
		b = le.AppendUint64(b, cdOffset)
		b = le.AppendUint32(b, sigLocator64)
		b = le.AppendUint32(b, 0)
		b = le.AppendUint64(b, end64At)
		b = le.AppendUint32(b, 1)
		records, cdSize, cdOffset = 0xffff, 0xffffffff, 0xffffffff
	}
	b = le.AppendUint32(b, sigEnd)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, uint16(min(records, 0xffff)))
	b = le.AppendUint16(b, uint16(min(records, 0xffff)))
	b = le.AppendUint32(b, uint32(min(cdSize, 0xffffffff)))
	b = le.AppendUint32(b, uint32(min(cdOffset, 0xffffffff)))
	b = le.AppendUint16(b, 0)
	out.Write(b)
}
