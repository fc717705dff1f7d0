package sftpsite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"time"

	"golang.org/x/crypto/ssh"
)

// The bulk-read path. Fetch reads through a second SFTP session of its
// own, on another "sftp" subsystem channel of the same SSH connection
// (like readLimit's), and speaks the few requests of SFTP v3 it needs
// itself: OPEN, FSTAT, READ and CLOSE. pkg/sftp allocates a packet for
// every reply, copies it into the caller's buffer and hands it from its
// receive goroutine to the goroutine blocked in ReadAt; here one
// goroutine sends the read requests and parses the replies, and reads
// each DATA payload from the channel straight into the slot it was asked
// for. A server that refuses the second channel, the subsystem or SFTP v3
// is read through pkg/sftp as before (fetchOnce).
//
// Every length the server sends is checked against what was asked before
// anything is read or allocated: a DATA payload must fit the rest of its
// request, other replies must fit maxProbeReply, a handle 256 bytes.

// SFTP v3 packet types, flags and status codes (draft-ietf-secsh-filexfer-02).
const (
	fxpOpen   = 3
	fxpClose  = 4
	fxpRead   = 5
	fxpFstat  = 8
	fxpHandle = 102
	fxpData   = 103
	fxpAttrs  = 105

	fxfRead = 0x1

	attrSize        = 0x1
	attrUIDGID      = 0x2
	attrPermissions = 0x4
	attrACModTime   = 0x8

	fxOK               = 0
	fxEOF              = 1
	fxNoSuchFile       = 2
	fxPermissionDenied = 3

	// maxHandle is the longest handle a server may return (the draft's
	// limit).
	maxHandle = 256
	// maxRawChans bounds the idle raw channels a session keeps for
	// later fetches.
	maxRawChans = 4
	// slotBits is how many low bits of a read request's id name its slot.
	slotBits = 16
	maxSlots = 1 << slotBits
)

// errProtocol marks a reply that breaks the protocol: the channel is
// closed, and the fetch retried on a new connection like a drop.
var errProtocol = errors.New("sftp protocol error")

func protoErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errProtocol, fmt.Sprintf(format, a...))
}

// statusError is an SSH_FXP_STATUS answer other than OK (or EOF where EOF
// is expected). It is an answer, not a failure of the connection: Fetch
// does not retry it. A missing file is os.ErrNotExist, a refusal
// os.ErrPermission, as with pkg/sftp.
type statusError struct {
	op   string
	code uint32
	msg  string
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("sftp %s: %s", e.op, statusName(e.code))
	if e.msg != "" {
		// The server's words, quoted and bounded: they are not ours.
		m := e.msg
		if len(m) > 200 {
			m = m[:200] + "..."
		}
		s += fmt.Sprintf(" (server: %q)", m)
	}
	return s
}

func (e *statusError) Is(target error) bool {
	switch e.code {
	case fxNoSuchFile:
		return target == fs.ErrNotExist
	case fxPermissionDenied:
		return target == fs.ErrPermission
	}
	return false
}

func statusName(code uint32) string {
	names := [...]string{"ok", "end of file", "no such file", "permission denied", "failure",
		"bad message", "no connection", "connection lost", "operation unsupported"}
	if code < uint32(len(names)) {
		return names[code]
	}
	return fmt.Sprintf("status %d", code)
}

// rawChan is one SFTP v3 session: r and w are its channel's two
// directions. Its methods are not safe for concurrent use; a fetch holds
// it alone and gives it back (putRaw) only when no request is left
// unanswered.
type rawChan struct {
	r      io.Reader
	w      io.Writer
	closer io.Closer // nil in tests that read from a plain reader

	id    uint32 // the id of the last control request
	out   []byte // requests being encoded
	small []byte // the body of the last control or STATUS reply
	hdr   [9]byte
	rhdr  [13]byte // a read's reply: length, type, id, data length or code
	// hdrNext says rhdr holds the next reply's header, read ahead.
	hdrNext bool
}

func (rc *rawChan) close() {
	if rc.closer != nil {
		rc.closer.Close()
	}
}

// rawInitTimeout bounds a raw channel's INIT (a variable for tests).
var rawInitTimeout = probeTimeout

// errNoRaw reports a server that does not serve the raw path: a refused
// subsystem, another SFTP version. The session then uses pkg/sftp only.
var errNoRaw = errors.New("sftp raw channel unavailable")

// openRaw opens a new "sftp" subsystem channel on sc and agrees on
// version 3. Opening the channel is bounded by the caller's watchdog (a
// server that does not answer has the connection closed under it), INIT
// by rawInitTimeout.
func openRaw(sc *ssh.Client) (*rawChan, error) {
	s, err := sc.NewSession()
	if err != nil {
		// Typically the server's limit on channels (OpenSSH's
		// MaxSessions, 10): this fetch uses pkg/sftp, a later one may
		// find a channel again.
		return nil, err
	}
	w, err := s.StdinPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	r, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := s.RequestSubsystem("sftp"); err != nil {
		s.Close()
		return nil, fmt.Errorf("%w: %v", errNoRaw, err)
	}
	rc := &rawChan{r: r, w: w, closer: s}
	// A server that opens the subsystem but does not answer INIT
	// costs this much, once per connection; then pkg/sftp reads.
	t := time.AfterFunc(rawInitTimeout, func() { s.Close() })
	err = rc.init()
	if !t.Stop() {
		err = fmt.Errorf("%w: no answer to INIT in %s", errNoRaw, rawInitTimeout)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return rc, nil
}

// init sends INIT and reads VERSION, which must be 3.
func (rc *rawChan) init() error {
	rc.out = binary.BigEndian.AppendUint32(rc.out[:0], 5)
	rc.out = append(rc.out, fxpInit)
	rc.out = binary.BigEndian.AppendUint32(rc.out, sftpVersion)
	if err := rc.flush(); err != nil {
		return err
	}
	// VERSION has no id: read its header by hand.
	var hdr [5]byte
	if _, err := io.ReadFull(rc.r, hdr[:]); err != nil {
		return unexpectedEOF(err)
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if hdr[4] != fxpVersion || n < 5 || n > maxProbeReply {
		return fmt.Errorf("%w: reply to INIT: type %d, %d bytes", errNoRaw, hdr[4], n)
	}
	body, err := rc.body(int(n - 1))
	if err != nil {
		return err
	}
	if v := binary.BigEndian.Uint32(body); v != sftpVersion {
		return fmt.Errorf("%w: server speaks SFTP version %d", errNoRaw, v)
	}
	return nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return fmt.Errorf("sftp channel closed: %w", io.ErrUnexpectedEOF)
	}
	return err
}

func (rc *rawChan) flush() error {
	if len(rc.out) == 0 {
		return nil
	}
	_, err := rc.w.Write(rc.out)
	rc.out = rc.out[:0]
	return err
}

// header reads a reply's length, type and id, and returns the number of
// bytes that follow. Every reply the raw path expects has an id.
func (rc *rawChan) header() (typ byte, id uint32, rest int, err error) {
	if _, err := io.ReadFull(rc.r, rc.hdr[:]); err != nil {
		return 0, 0, 0, unexpectedEOF(err)
	}
	n := binary.BigEndian.Uint32(rc.hdr[:4])
	if n < 5 {
		return 0, 0, 0, protoErr("packet of %d bytes", n)
	}
	return rc.hdr[4], binary.BigEndian.Uint32(rc.hdr[5:]), int(n - 5), nil
}

// body reads n bytes (at most maxProbeReply) into rc.small.
func (rc *rawChan) body(n int) ([]byte, error) {
	if n < 0 || n > maxProbeReply {
		return nil, protoErr("reply of %d bytes", n)
	}
	if cap(rc.small) < n {
		rc.small = make([]byte, max(n, 512))
	}
	b := rc.small[:n]
	if _, err := io.ReadFull(rc.r, b); err != nil {
		return nil, unexpectedEOF(err)
	}
	return b, nil
}

// startReq begins a request of type typ with a new control id.
func (rc *rawChan) startReq(typ byte) {
	rc.id++
	// The length is patched by endReq.
	rc.out = append(rc.out, 0, 0, 0, 0, typ)
	rc.out = binary.BigEndian.AppendUint32(rc.out, rc.id)
}

// endReq writes the length of the request that starts at start.
func (rc *rawChan) endReq(start int) {
	binary.BigEndian.PutUint32(rc.out[start:], uint32(len(rc.out)-start-4))
}

func appendString(b []byte, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// reply reads the answer to the control request just sent: a packet of
// type want, or a STATUS, which status turns into nil (OK) or an error.
func (rc *rawChan) reply(op string, want byte) (typ byte, body []byte, err error) {
	typ, id, rest, err := rc.header()
	if err != nil {
		return 0, nil, err
	}
	if id != rc.id {
		return 0, nil, protoErr("%s: reply to request %d, want %d", op, id, rc.id)
	}
	if typ != want && typ != fxpStatus {
		return 0, nil, protoErr("%s: reply of type %d", op, typ)
	}
	body, err = rc.body(rest)
	if err != nil {
		return 0, nil, err
	}
	if typ == fxpStatus {
		return typ, nil, parseStatus(op, body)
	}
	return typ, body, nil
}

// parseStatus returns nil for OK, else a *statusError (io.EOF for EOF is
// the caller's business: it has the code).
func parseStatus(op string, body []byte) error {
	if len(body) < 4 {
		return protoErr("%s: status of %d bytes", op, len(body))
	}
	code := binary.BigEndian.Uint32(body)
	if code == fxOK {
		return nil
	}
	// Version 3 adds a message and a language tag; some servers omit
	// them, and a malformed message is not worth failing over.
	msg := ""
	if len(body) >= 8 {
		if n := binary.BigEndian.Uint32(body[4:]); uint64(n) <= uint64(len(body)-8) {
			msg = string(body[8 : 8+n])
		}
	}
	return &statusError{op: op, code: code, msg: msg}
}

// open opens path for reading and returns its handle.
func (rc *rawChan) open(path string) ([]byte, error) {
	start := len(rc.out)
	rc.startReq(fxpOpen)
	rc.out = appendString(rc.out, []byte(path))
	rc.out = binary.BigEndian.AppendUint32(rc.out, fxfRead)
	rc.out = binary.BigEndian.AppendUint32(rc.out, 0) // no attributes
	rc.endReq(start)
	if err := rc.flush(); err != nil {
		return nil, err
	}
	typ, body, err := rc.reply("open", fxpHandle)
	if err != nil {
		return nil, err
	}
	if typ == fxpStatus {
		return nil, protoErr("open: status OK instead of a handle")
	}
	if len(body) < 4 {
		return nil, protoErr("open: handle reply of %d bytes", len(body))
	}
	n := binary.BigEndian.Uint32(body)
	if n == 0 || n > maxHandle || uint64(n) != uint64(len(body)-4) {
		return nil, protoErr("open: handle of %d bytes in a reply of %d", n, len(body))
	}
	return append([]byte(nil), body[4:]...), nil
}

// sendFstat queues an FSTAT of handle.
func (rc *rawChan) sendFstat(handle []byte) {
	start := len(rc.out)
	rc.startReq(fxpFstat)
	rc.out = appendString(rc.out, handle)
	rc.endReq(start)
}

// sendClose queues a CLOSE of handle.
func (rc *rawChan) sendClose(handle []byte) {
	start := len(rc.out)
	rc.startReq(fxpClose)
	rc.out = appendString(rc.out, handle)
	rc.endReq(start)
}

// fstat asks for handle's attributes.
func (rc *rawChan) fstat(handle []byte, name string) (os.FileInfo, error) {
	rc.sendFstat(handle)
	if err := rc.flush(); err != nil {
		return nil, err
	}
	return rc.attrsReply(name)
}

func (rc *rawChan) attrsReply(name string) (os.FileInfo, error) {
	typ, body, err := rc.reply("fstat", fxpAttrs)
	if err != nil {
		return nil, err
	}
	if typ == fxpStatus {
		return nil, protoErr("fstat: status OK instead of attributes")
	}
	return parseAttrs(name, body)
}

// closeHandle closes handle. Like pkg/sftp's File.Close in fetchOnce, its
// failure is not the fetch's: the caller only stops reusing the channel.
func (rc *rawChan) closeHandle(handle []byte) error {
	rc.sendClose(handle)
	if err := rc.flush(); err != nil {
		return err
	}
	_, _, err := rc.reply("close", fxpStatus)
	return err
}

// rawInfo is the os.FileInfo of an ATTRS reply, read as pkg/sftp reads
// one (so that a stat from either path compares equal).
type rawInfo struct {
	name  string
	size  int64
	mode  os.FileMode
	mtime time.Time
}

func (fi *rawInfo) Name() string       { return fi.name }
func (fi *rawInfo) Size() int64        { return fi.size }
func (fi *rawInfo) Mode() os.FileMode  { return fi.mode }
func (fi *rawInfo) ModTime() time.Time { return fi.mtime }
func (fi *rawInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *rawInfo) Sys() any           { return nil }

// parseAttrs reads the fields of ATTRS that Fetch uses: size, type and
// permissions, mtime. Later fields (extended attributes) are ignored.
func parseAttrs(name string, b []byte) (os.FileInfo, error) {
	fi := &rawInfo{name: name, mtime: time.Unix(0, 0)}
	short := func() (os.FileInfo, error) { return nil, protoErr("attributes of %d bytes", len(b)) }
	if len(b) < 4 {
		return short()
	}
	flags := binary.BigEndian.Uint32(b)
	b = b[4:]
	if flags&attrSize != 0 {
		if len(b) < 8 {
			return short()
		}
		sz := binary.BigEndian.Uint64(b)
		if sz > math.MaxInt64 {
			return nil, protoErr("file size %d", sz)
		}
		fi.size = int64(sz)
		b = b[8:]
	}
	if flags&attrUIDGID != 0 {
		if len(b) < 8 {
			return short()
		}
		b = b[8:]
	}
	if flags&attrPermissions != 0 {
		if len(b) < 4 {
			return short()
		}
		fi.mode = fileMode(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if flags&attrACModTime != 0 {
		if len(b) < 8 {
			return short()
		}
		fi.mtime = time.Unix(int64(binary.BigEndian.Uint32(b[4:])), 0)
	}
	return fi, nil
}

// fileMode converts POSIX mode bits as pkg/sftp does: no type bits, or
// S_IFREG, is a regular file.
func fileMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	switch m & 0o170000 {
	case 0o040000:
		mode |= os.ModeDir
	case 0o120000:
		mode |= os.ModeSymlink
	case 0o020000:
		mode |= os.ModeDevice | os.ModeCharDevice
	case 0o060000:
		mode |= os.ModeDevice
	case 0o010000:
		mode |= os.ModeNamedPipe
	case 0o140000:
		mode |= os.ModeSocket
	case 0, 0o100000:
	default:
		mode |= os.ModeIrregular
	}
	if m&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	return mode
}
