package sftpsite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// replies builds a server's side of a raw channel: packets of SFTP v3.
type replies struct{ b []byte }

func (r *replies) packet(typ byte, id uint32, body ...[]byte) *replies {
	n := 1
	if typ != fxpVersion {
		n += 4
	}
	for _, b := range body {
		n += len(b)
	}
	r.b = binary.BigEndian.AppendUint32(r.b, uint32(n))
	r.b = append(r.b, typ)
	if typ != fxpVersion {
		r.b = binary.BigEndian.AppendUint32(r.b, id)
	}
	for _, b := range body {
		r.b = append(r.b, b...)
	}
	return r
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func str(s []byte) []byte { return append(u32(uint32(len(s))), s...) }

func attrsBody(size uint64, mode, mtime uint32) []byte {
	b := u32(attrSize | attrPermissions | attrACModTime)
	b = binary.BigEndian.AppendUint64(b, size)
	b = append(b, u32(mode)...)
	return append(append(b, u32(mtime)...), u32(mtime)...)
}

// readID is the id of the gen-th request (from 1) of slot idx.
func readID(idx, gen uint32) uint32 { return gen<<slotBits | idx }

// goodStream is a complete, well-behaved conversation for a file of 10
// bytes read 4 at a time, 2 requests in flight: VERSION, HANDLE, ATTRS,
// DATA 0-4, 4-8, 8-10, EOF at 10, ATTRS, STATUS OK.
func goodStream(data []byte) []byte {
	r := &replies{}
	r.packet(fxpVersion, 0, u32(3), str([]byte("limits@openssh.com")), str([]byte("1")))
	r.packet(fxpHandle, 1, str([]byte("h")))
	r.packet(fxpAttrs, 2, attrsBody(10, 0o100644, 1700000000))
	r.packet(fxpData, readID(0, 1), str(data[0:4]))
	r.packet(fxpData, readID(1, 1), str(data[4:8]))
	r.packet(fxpData, readID(0, 2), str(data[8:10]))
	r.packet(fxpStatus, readID(1, 2), u32(fxEOF), str([]byte("EOF")), str(nil))
	r.packet(fxpAttrs, 3, attrsBody(10, 0o100644, 1700000000))
	r.packet(fxpStatus, 4, u32(fxOK), str(nil), str(nil))
	return r.b
}

// countingReader counts what the client took from the server.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// runRaw runs INIT and one fetch of "f" (10 bytes listed) over a raw
// channel whose server side said stream.
func runRaw(t testing.TB, stream []byte, reqSize, conc int) (out []byte, consumed int, reusable bool, err error) {
	cr := &countingReader{r: bytes.NewReader(stream)}
	rc := &rawChan{r: cr, w: io.Discard}
	if err := rc.init(); err != nil {
		return nil, cr.n, false, err
	}
	wd := newWatchdog(time.Minute, func() {})
	defer wd.stop()
	var buf bytes.Buffer
	var written int64
	var before os.FileInfo
	reusable, err = fetchRaw(rc, wd, "f", &buf, 10, &written, &before, reqSize, conc)
	if int64(buf.Len()) != written {
		t.Fatalf("wrote %d bytes, counted %d", buf.Len(), written)
	}
	if cap(rc.small) > maxProbeReply {
		t.Fatalf("a reply buffer of %d bytes", cap(rc.small))
	}
	return buf.Bytes(), cr.n, reusable, err
}

func TestRawFetchStream(t *testing.T) {
	data := []byte("0123456789")
	out, n, reusable, err := runRaw(t, goodStream(data), 4, 2)
	if err != nil || !bytes.Equal(out, data) || !reusable {
		t.Fatalf("fetch = %q, reusable %v, %v", out, reusable, err)
	}
	if n != len(goodStream(data)) {
		t.Errorf("read %d bytes of %d", n, len(goodStream(data)))
	}
}

// Lengths the server sends are checked before anything is read or
// allocated by them: a malformed or oversize packet is an error, read no
// further than its header.
func TestRawMalformed(t *testing.T) {
	data := []byte("0123456789")
	head := func() *replies {
		r := &replies{}
		r.packet(fxpVersion, 0, u32(3))
		r.packet(fxpHandle, 1, str([]byte("h")))
		r.packet(fxpAttrs, 2, attrsBody(10, 0o100644, 1700000000))
		return r
	}
	prefix := len(head().b)
	endless := bytes.Repeat([]byte{0xff}, 1<<20) // what follows a bad header
	for _, tc := range []struct {
		name string
		tail []byte // after the ATTRS of the first stat
		want string
		// most bytes the client may read past the good replies: a read's
		// reply header is 13 bytes (length, type, id, data length or
		// status code)
		most int
	}{
		{"data longer than asked", (&replies{}).packet(fxpData, readID(0, 1), str(data[:5])).b, "5 bytes of data for a read of 4", 13},
		{"4 GiB data length", append(append(u32(0xffffffff), fxpData), append(u32(readID(0, 1)), u32(0xffffffff-9)...)...), "bytes of data for a read of 4", 13},
		{"data length disagrees with the packet", append(append(u32(9+4), fxpData), append(u32(readID(0, 1)), u32(3)...)...), "data of 3 bytes in a reply of 8", 13},
		{"data length beyond the packet", append(append(u32(9+4), fxpData), append(u32(readID(0, 1)), u32(100)...)...), "data of 100 bytes in a reply of 8", 13},
		{"empty data", (&replies{}).packet(fxpData, readID(0, 1), str(nil)).b, "empty data", 13},
		{"data packet without a length", (&replies{}).packet(fxpData, readID(0, 1)).b, "packet of 5 bytes", 13},
		{"packet shorter than its id", append(u32(3), 1, 2, 3), "packet of 3 bytes", 13},
		{"zero-length packet", u32(0), "packet of 0 bytes", 13},
		{"status of 1 GiB", append(append(u32(1<<30), fxpStatus), u32(readID(0, 1))...), "reply of 1073741819 bytes", 13},
		{"unknown id", (&replies{}).packet(fxpData, 77, str(data[:4])).b, "unknown request 77", 13},
		{"id of a slot not asked", (&replies{}).packet(fxpData, readID(5, 1), str(data[:4])).b, "unknown request", 13},
		{"stale generation", (&replies{}).packet(fxpData, readID(0, 2), str(data[:4])).b, "unknown request", 13},
		{"unknown type", (&replies{}).packet(250, readID(0, 1), u32(1)).b, "reply of type 250", 13},
		{"status without code", (&replies{}).packet(fxpStatus, readID(0, 1)).b, "packet of 5 bytes", 13},
		{"status OK for a read", (&replies{}).packet(fxpStatus, readID(0, 1), u32(fxOK)).b, "status OK instead of data", 13},
		{"status failure", (&replies{}).packet(fxpStatus, readID(0, 1), u32(4), str([]byte("disk on fire")), str(nil)).b, `sftp read: failure (server: "disk on fire")`, 100},
		{"status with a bad message length", (&replies{}).packet(fxpStatus, readID(0, 1), u32(4), u32(1000)).b, "sftp read: failure", 100},
		{"truncated", (&replies{}).packet(fxpData, readID(0, 1), str(data[:4])).b[:11], "unexpected EOF", 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := append(head().b, tc.tail...)
			if tc.name != "truncated" {
				stream = append(stream, endless...)
			}
			_, n, reusable, err := runRaw(t, stream, 4, 2)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if reusable {
				t.Error("channel offered for reuse after a broken reply")
			}
			if n-prefix > tc.most {
				t.Errorf("read %d bytes past the good replies, want at most %d", n-prefix, tc.most)
			}
		})
	}

	// The replies before the reads.
	for _, tc := range []struct {
		name   string
		stream []byte
		want   string
		noRaw  bool
	}{
		{"version 2", (&replies{}).packet(fxpVersion, 0, u32(2)).b, "version 2", true},
		{"version without number", (&replies{}).packet(fxpVersion, 0).b, "reply to INIT", true},
		{"huge version", append(u32(1<<30), fxpVersion), "reply to INIT", true},
		{"status for INIT", (&replies{}).packet(fxpStatus, 0, u32(8)).b, "reply to INIT", true},
		{"handle of 300 bytes", (&replies{}).packet(fxpVersion, 0, u32(3)).packet(fxpHandle, 1, str(make([]byte, 300))).b, "handle of 300 bytes", false},
		{"handle length beyond the packet", (&replies{}).packet(fxpVersion, 0, u32(3)).packet(fxpHandle, 1, u32(5), []byte("ab")).b, "handle of 5 bytes", false},
		{"empty handle", (&replies{}).packet(fxpVersion, 0, u32(3)).packet(fxpHandle, 1, str(nil)).b, "handle of 0 bytes", false},
		{"open answered with another id", (&replies{}).packet(fxpVersion, 0, u32(3)).packet(fxpHandle, 9, str([]byte("h"))).b, "reply to request 9", false},
		{"open: no such file", (&replies{}).packet(fxpVersion, 0, u32(3)).packet(fxpStatus, 1, u32(fxNoSuchFile), str([]byte("nope")), str(nil)).b, "no such file", false},
		{"attributes cut short", (&replies{}).packet(fxpVersion, 0, u32(3)).packet(fxpHandle, 1, str([]byte("h"))).packet(fxpAttrs, 2, u32(attrSize), u32(0)).b, "attributes of", false},
		{"size beyond int64", (&replies{}).packet(fxpVersion, 0, u32(3)).packet(fxpHandle, 1, str([]byte("h"))).packet(fxpAttrs, 2, attrsBody(1<<63, 0o100644, 1)).b, "file size", false},
		{"a directory", (&replies{}).packet(fxpVersion, 0, u32(3)).packet(fxpHandle, 1, str([]byte("h"))).packet(fxpAttrs, 2, attrsBody(10, 0o40755, 1)).packet(fxpStatus, 3, u32(fxOK)).b, "not a regular file", false},
		{"size differs from the listing", (&replies{}).packet(fxpVersion, 0, u32(3)).packet(fxpHandle, 1, str([]byte("h"))).packet(fxpAttrs, 2, attrsBody(11, 0o100644, 1)).packet(fxpStatus, 3, u32(fxOK)).b, "remote file changed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := runRaw(t, tc.stream, 4, 2)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if errors.Is(err, errNoRaw) != tc.noRaw {
				t.Errorf("errNoRaw: %v, want %v", errors.Is(err, errNoRaw), tc.noRaw)
			}
		})
	}
}

// A missing file is os.ErrNotExist, a refusal os.ErrPermission.
func TestRawStatusError(t *testing.T) {
	for code, want := range map[uint32]error{fxNoSuchFile: os.ErrNotExist, fxPermissionDenied: os.ErrPermission} {
		err := parseStatus("open", append(u32(code), str([]byte("x"))...))
		if !errors.Is(err, want) {
			t.Errorf("code %d: %v is not %v", code, err, want)
		}
	}
	if err := parseStatus("read", u32(4)); errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		t.Errorf("failure is %v", err)
	}
}

// FuzzRawReplies runs a fetch against whatever a server may send: it must
// end with an error or with exactly the file, never panic, hang, take
// more than a reply's bound in memory, or write more than was asked.
func FuzzRawReplies(f *testing.F) {
	data := []byte("0123456789")
	good := goodStream(data)
	f.Add(good, uint8(4), uint8(2))
	f.Add(good[:len(good)-5], uint8(4), uint8(2))
	short := &replies{}
	short.packet(fxpVersion, 0, u32(3))
	short.packet(fxpHandle, 1, str([]byte("h")))
	short.packet(fxpAttrs, 2, attrsBody(10, 0o100644, 1700000000))
	short.packet(fxpData, readID(0, 1), str(data[0:3]))
	short.packet(fxpData, readID(1, 1), str(data[4:8]))
	short.packet(fxpData, readID(0, 2), str(data[3:4]))
	f.Add(short.b, uint8(4), uint8(2))
	one := &replies{}
	one.packet(fxpVersion, 0, u32(3))
	one.packet(fxpHandle, 1, str([]byte("h")))
	one.packet(fxpAttrs, 2, attrsBody(10, 0o100644, 1700000000))
	one.packet(fxpData, readID(0, 1), str(data))
	one.packet(fxpData, readID(0, 2), str([]byte("x")))
	one.packet(fxpAttrs, 3, attrsBody(10, 0o100644, 1700000000))
	one.packet(fxpStatus, 4, u32(fxOK))
	f.Add(one.b, uint8(16), uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, reqSize, conc uint8) {
		out, n, _, err := runRaw(t, stream, int(reqSize%32)+1, int(conc%8)+1)
		if n > len(stream) {
			t.Fatalf("read %d of %d bytes", n, len(stream))
		}
		if len(out) > 10 {
			t.Fatalf("wrote %d bytes of a 10-byte file", len(out))
		}
		if err == nil && len(out) != 10 {
			t.Fatalf("success with %d bytes", len(out))
		}
	})
}
