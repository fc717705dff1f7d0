package srfile

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/im1dev/im1/providers/landing"
)

// Entry is one table file inside SRExtract.
type Entry struct {
	Name string // base name, e.g. "SRPatient.csv"
	Size uint64 // uncompressed, as the archive declares it; reads stop there
	Open func() (io.ReadCloser, error)
}

// Limits bound what OpenExtract accepts from an archive nobody vouches for.
type Limits struct {
	MaxEntries   int    // entries in the archive
	MaxEntrySize uint64 // declared uncompressed size of one entry
	MaxTotalSize uint64 // declared uncompressed size of all entries
	MaxParts     int    // SRExtract.z01 … parts
}

// DefaultLimits allow the largest extracts seen (SRCode re-bulks of
// hundreds of GB) and stop zip bombs that declare more. The declared size
// is binding: archive/zip fails a read that runs past it.
var DefaultLimits = Limits{MaxEntries: 4096, MaxEntrySize: 1 << 40, MaxTotalSize: 4 << 40, MaxParts: 999}

// OpenExtract opens the SRExtract archive of an extract folder. names are
// the files present in dir; the archive is SRExtract.zip alone, or split
// into SRExtract.z01 … .zNN with SRExtract.zip as the last part (PKWARE
// spanning, as zip4j and Info-ZIP `zip -s` write it). Every entry must be
// a *.csv at the top level with a safe, unique name, and within limits.
// The closer releases the files; entries cannot be opened after it.
func OpenExtract(dir string, names []string) ([]Entry, io.Closer, error) {
	return OpenExtractLimits(dir, names, DefaultLimits)
}

// OpenExtractLimits is OpenExtract with explicit limits.
func OpenExtractLimits(dir string, names []string, lim Limits) (entries []Entry, closer io.Closer, err error) {
	last, parts, err := extractParts(names, lim)
	if err != nil {
		return nil, nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, err
	}
	defer root.Close() // opened files outlive the root
	var files multiCloser
	defer func() {
		if err != nil {
			files.Close()
		}
	}()
	open := func(name string) (*os.File, int64, error) {
		f, err := root.Open(name)
		if err != nil {
			return nil, 0, err
		}
		files = append(files, f)
		st, err := f.Stat()
		if err != nil {
			return nil, 0, err
		}
		if !st.Mode().IsRegular() {
			return nil, 0, fmt.Errorf("%s is not a regular file", name)
		}
		return f, st.Size(), nil
	}
	zf, zsize, err := open(last)
	if err != nil {
		return nil, nil, err
	}
	eocd, err := readEOCD(zf, zsize)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", last, err)
	}
	if int(eocd.disk) != len(parts) {
		return nil, nil, fmt.Errorf("%s is disk %d of a split archive but %d other parts are present", last, eocd.disk+1, len(parts))
	}
	var ra io.ReaderAt = zf
	size := zsize
	if len(parts) > 0 {
		var disks []disk
		for i, p := range parts {
			f, n, err := open(p)
			if err != nil {
				return nil, nil, err
			}
			if i == 0 {
				var sig [4]byte
				if _, err := f.ReadAt(sig[:], 0); err != nil || binary.LittleEndian.Uint32(sig[:]) != sigSplit {
					return nil, nil, fmt.Errorf("%s does not start with the split archive signature", p)
				}
			}
			disks = append(disks, disk{f, n})
		}
		disks = append(disks, disk{zf, zsize})
		if ra, size, err = joinSplit(disks, eocd, lim); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", ExtractZip, err)
		}
	}
	zr, err := zip.NewReader(ra, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are judged below
		return nil, nil, fmt.Errorf("%s: %w", ExtractZip, err)
	}
	if len(zr.File) > lim.MaxEntries {
		return nil, nil, fmt.Errorf("%s: %d entries, more than %d", ExtractZip, len(zr.File), lim.MaxEntries)
	}
	seen := map[string]bool{}
	var total uint64
	for _, f := range zr.File {
		name := f.Name
		if strings.ContainsAny(name, `/\`) || path.Base(name) != name {
			return nil, nil, fmt.Errorf("%s: entry %q is not a plain file name", ExtractZip, name)
		}
		if err := landing.ValidName(name); err != nil {
			return nil, nil, fmt.Errorf("%s: entry: %w", ExtractZip, err)
		}
		if !strings.EqualFold(path.Ext(name), ".csv") {
			return nil, nil, fmt.Errorf("%s: rogue file %q: only .csv entries are expected", ExtractZip, name)
		}
		if key := strings.ToLower(name); seen[key] {
			return nil, nil, fmt.Errorf("%s: entry %q appears twice", ExtractZip, name)
		} else {
			seen[key] = true
		}
		if f.UncompressedSize64 > lim.MaxEntrySize {
			return nil, nil, fmt.Errorf("%s: entry %q declares %d bytes, more than the %d allowed", ExtractZip, name, f.UncompressedSize64, lim.MaxEntrySize)
		}
		total += f.UncompressedSize64
		if total > lim.MaxTotalSize {
			return nil, nil, fmt.Errorf("%s: entries declare more than the %d bytes allowed in total", ExtractZip, lim.MaxTotalSize)
		}
		entries = append(entries, Entry{Name: name, Size: f.UncompressedSize64, Open: f.Open})
	}
	return entries, files, nil
}

// extractParts picks the archive files out of a folder listing: the last
// part (SRExtract.zip) and the numbered parts in order, which must run
// from .z01 without a gap.
func extractParts(names []string, lim Limits) (last string, parts []string, err error) {
	byNum := map[int]string{}
	for _, n := range names {
		stem, ext, ok := strings.Cut(n, ".")
		if !ok || !strings.EqualFold(stem, "SRExtract") {
			continue
		}
		if err := landing.ValidName(n); err != nil {
			return "", nil, err
		}
		switch {
		case strings.EqualFold(ext, "zip"):
			if last != "" {
				return "", nil, fmt.Errorf("two archives: %s and %s", last, n)
			}
			last = n
		case len(ext) >= 3 && (ext[0] == 'z' || ext[0] == 'Z') && isDigits(ext[1:]):
			// Numbered like Info-ZIP (.z01 … .z99, .z100); zip4j once wrote
			// .z010 for .z10, so the number, not the text, identifies a part.
			k, err := strconv.Atoi(ext[1:])
			if err != nil || k < 1 || k > lim.MaxParts {
				return "", nil, fmt.Errorf("split archive part %s out of range", n)
			}
			if prev, dup := byNum[k]; dup {
				return "", nil, fmt.Errorf("split archive parts %s and %s have the same number", prev, n)
			}
			byNum[k] = n
		}
	}
	if last == "" {
		return "", nil, fmt.Errorf("%s missing", ExtractZip)
	}
	nums := make([]int, 0, len(byNum))
	for k := range byNum {
		nums = append(nums, k)
	}
	sort.Ints(nums)
	for i, k := range nums {
		if k != i+1 {
			return "", nil, fmt.Errorf("split archive part SRExtract.z%02d missing", i+1)
		}
		parts = append(parts, byNum[k])
	}
	return last, parts, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

type multiCloser []*os.File

func (m multiCloser) Close() error {
	var errs []error
	for _, f := range m {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
