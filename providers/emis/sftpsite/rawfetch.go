package sftpsite

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
)

// rawChan returns an idle raw channel of s, or opens one; nil means this
// attempt reads through pkg/sftp.
func (s *session) rawChan() *rawChan {
	s.rawMu.Lock()
	if s.rawOff {
		s.rawMu.Unlock()
		return nil
	}
	if n := len(s.rawIdle); n > 0 {
		rc := s.rawIdle[n-1]
		s.rawIdle = s.rawIdle[:n-1]
		s.rawMu.Unlock()
		return rc
	}
	s.rawMu.Unlock()
	rc, err := openRaw(s.ssh)
	if err != nil {
		if errors.Is(err, errNoRaw) {
			// The server will not serve it on this connection.
			s.rawMu.Lock()
			s.rawOff = true
			s.rawMu.Unlock()
		}
		return nil
	}
	return rc
}

// putRaw keeps rc for a later fetch, or closes it.
func (s *session) putRaw(rc *rawChan) {
	s.rawMu.Lock()
	if len(s.rawIdle) < maxRawChans && !s.isDead() {
		s.rawIdle = append(s.rawIdle, rc)
		rc = nil
	}
	s.rawMu.Unlock()
	if rc != nil {
		rc.close()
	}
}

// fetchRaw is fetchOnce on a raw channel. reusable says the channel is
// in a clean state (no request unanswered, no handle left open).
func fetchRaw(rc *rawChan, wd *watchdog, p string, w io.Writer, expectSize int64, written *int64, before *os.FileInfo, reqSize, conc int) (reusable bool, err error) {
	handle, err := rc.open(p)
	if err != nil {
		var se *statusError
		return errors.As(err, &se), err
	}
	st, err := rc.fstat(handle, p)
	if err != nil {
		var se *statusError
		return errors.As(err, &se) && rc.closeHandle(handle) == nil, err
	}
	if err := checkBefore(st, expectSize, before); err != nil {
		// An answer: the channel is sound if CLOSE is answered.
		return rc.closeHandle(handle) == nil, err
	}
	past, clean, err := rc.copyRange(handle, wd, w, st.Size(), written, reqSize, conc)
	if err != nil {
		return false, err
	}
	// FSTAT and CLOSE in one round trip: the server answers in order.
	rc.sendFstat(handle)
	fstatID := rc.id
	rc.sendClose(handle)
	if err := rc.flush(); err != nil {
		return false, err
	}
	closeID := rc.id
	rc.id = fstatID
	after, err := rc.attrsReply(p)
	if err != nil {
		return false, err
	}
	rc.id = closeID
	_, _, cerr := rc.reply("close", fxpStatus)
	return clean && cerr == nil, checkAfter(after, p, *before, *written, past)
}

// rawSlot is one read request's buffer: bytes [off, off+n) of the file,
// got of them received so far.
type rawSlot struct {
	buf    []byte
	off    int64
	n, got int
	id     uint32 // of the request in flight
	idx    uint32 // the slot's place in the ring: an id's low slotBits
	gen    uint32 // counts the slot's requests, for the next id
	busy   bool   // a request is in flight
	done   bool   // complete (got == n, or eof) and not yet handed over
	eof    bool   // the server answered EOF
}

// copyRange writes bytes [*written, size) of the file to w in order, as
// the pkg/sftp path's copyRange does: up to conc requests of reqSize
// bytes in flight, then a read at size that must find the end (past says
// it did not). A short answer is asked again for the rest; an EOF before
// size stops the copy without error (the caller compares *written with
// the size). Writes to w happen on a goroutine of their own, so that the
// replies keep being read while w works, and through wd, which counts
// them and refuses them once the fetch was cancelled. clean says no
// request was left unanswered (false only with an error).
func (rc *rawChan) copyRange(handle []byte, wd *watchdog, w io.Writer, size int64, written *int64, reqSize, conc int) (past, clean bool, err error) {
	start, rs := *written, int64(max(reqSize, 1))
	if start > size {
		return true, true, nil
	}
	chunks := (size-start+rs-1)/rs + 1 // the last one is the read at size
	ring := make([]rawSlot, min(int64(max(conc, 1)), chunks, maxSlots))
	bufSize := max(min(rs, size-start), 1)
	for i := range ring {
		// The spare bytes take the next reply's header (readReply).
		ring[i].buf, ring[i].idx = make([]byte, bufSize+int64(len(rc.rhdr))), uint32(i)
	}
	nr := int64(len(ring))

	// The writer takes completed chunks in order and gives their slots
	// back; both channels hold a whole ring, so neither side blocks on a
	// send.
	ready := make(chan int64, len(ring))
	freed := make(chan struct{}, len(ring))
	failed := make(chan struct{})
	var werr error
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		for i := range ready {
			s := &ring[i%nr]
			if werr == nil && s.got > 0 {
				if _, werr = wd.write(w, s.buf[:s.got], written); werr != nil {
					close(failed)
				}
			}
			freed <- struct{}{}
		}
	}()
	finish := func(e error) (bool, bool, error) {
		close(ready)
		<-wdone
		if e == nil {
			e = werr
		}
		return past, clean, e
	}

	inFlight := 0
	send := func(s *rawSlot) {
		s.gen++
		s.id = s.gen<<slotBits | s.idx
		s.busy = true
		inFlight++
		b := rc.out
		b = binary.BigEndian.AppendUint32(b, uint32(1+4+4+len(handle)+8+4))
		b = append(b, fxpRead)
		b = binary.BigEndian.AppendUint32(b, s.id)
		b = appendString(b, handle)
		b = binary.BigEndian.AppendUint64(b, uint64(s.off+int64(s.got)))
		b = binary.BigEndian.AppendUint32(b, uint32(s.n-s.got))
		rc.out = b
	}
	next := int64(0) // chunks requested
	issue := func() {
		s := &ring[next%nr]
		s.off, s.n = start+next*rs, int(min(rs, size-start-next*rs))
		if next == chunks-1 {
			s.off, s.n = size, 1
		}
		s.got, s.done, s.eof = 0, false, false
		send(s)
		next++
	}
	for next < nr {
		issue()
	}
	stop := false      // an EOF came before size: the copy ends there
	handed := int64(0) // chunks given to the writer (or, the last, checked)
	// Slots the writer has finished with take the next chunks, batch at
	// a time: each write to the channel is an SSH packet of its own (an
	// encryption and a system call).
	batch, free := max(1, len(ring)/8), 0
	for {
	refill:
		for {
			select {
			case <-freed:
				free++
			default:
				break refill
			}
		}
		if free >= batch || inFlight == 0 || len(rc.out) > 0 {
			for ; free > 0 && next < chunks; free-- {
				issue()
			}
		}
		if err := rc.flush(); err != nil {
			return finish(err)
		}
		select {
		case <-failed:
			return finish(nil)
		default:
		}
		if inFlight == 0 {
			// All of the ring is with the writer: wait for a slot.
			select {
			case <-freed:
				free++
			case <-failed:
				clean = true
				return finish(nil)
			}
			continue
		}
		s, err := rc.readReply(ring, inFlight > 1)
		if err != nil {
			return finish(err)
		}
		inFlight--
		if !s.eof && s.got < s.n {
			// A short answer: ask for the rest.
			send(s)
			continue
		}
		s.done = true
		// Hand over the completed chunks that are next in order.
		for handed < chunks {
			h := &ring[handed%nr]
			if !h.done {
				break
			}
			h.done = false
			if handed == chunks-1 {
				past = h.got > 0
			} else {
				ready <- handed
				stop = h.eof
			}
			handed++
			if stop {
				break
			}
		}
		if stop || handed == chunks {
			// After an early EOF, the requests still in flight are
			// answered (EOF, most likely) before anything else is asked.
			for inFlight > 0 {
				if _, err := rc.readReply(ring, inFlight > 1); err != nil {
					return finish(err)
				}
				inFlight--
			}
			clean = true
			return finish(nil)
		}
	}
}

// readReply reads one answer to a read request of ring, into its slot:
// the payload of DATA straight into the slot's buffer, after the rest of
// the request (s.n - s.got) has bounded its length; STATUS EOF marks the
// slot done at EOF, any other status is the error. more says another
// reply is due after this one.
//
// Each read of the channel may cost a window adjust message (an SSH
// packet and a system call), so reads are few: DATA and STATUS both have
// 13 bytes at least (length, type, id, and the data's length or the
// status code), which one read takes, and when more is expected (another
// reply is due), the read of a DATA payload takes the next reply's
// header with it, into the spare bytes at the end of the slot's buffer.
// A packet too short for that is an error all the same.
func (rc *rawChan) readReply(ring []rawSlot, more bool) (*rawSlot, error) {
	hdr := &rc.rhdr
	if !rc.hdrNext {
		if _, err := io.ReadFull(rc.r, hdr[:]); err != nil {
			return nil, unexpectedEOF(err)
		}
	}
	rc.hdrNext = false
	plen := binary.BigEndian.Uint32(hdr[:4])
	typ, id := hdr[4], binary.BigEndian.Uint32(hdr[5:9])
	if plen < 9 {
		return nil, protoErr("packet of %d bytes", plen)
	}
	rest := int(plen - 9) // after the length or code
	i := id & (maxSlots - 1)
	if int(i) >= len(ring) || !ring[i].busy || ring[i].id != id {
		return nil, protoErr("reply to unknown request %d", id)
	}
	s := &ring[i]
	switch typ {
	case fxpData:
		n := binary.BigEndian.Uint32(hdr[9:])
		want := s.n - s.got
		switch {
		case uint64(n) != uint64(rest):
			return nil, protoErr("data of %d bytes in a reply of %d", n, rest+4)
		case uint64(n) > uint64(want):
			return nil, protoErr("%d bytes of data for a read of %d", n, want)
		case n == 0:
			return nil, protoErr("empty data for a read of %d", want)
		}
		end := s.got + int(n)
		if more {
			if _, err := io.ReadFull(rc.r, s.buf[s.got:end+len(hdr)]); err != nil {
				return nil, unexpectedEOF(err)
			}
			copy(hdr[:], s.buf[end:])
			rc.hdrNext = true
		} else if _, err := io.ReadFull(rc.r, s.buf[s.got:end]); err != nil {
			return nil, unexpectedEOF(err)
		}
		s.got = end
	case fxpStatus:
		if rest > maxProbeReply {
			return nil, protoErr("reply of %d bytes", rest+4)
		}
		if cap(rc.small) < 4+rest {
			rc.small = make([]byte, max(4+rest, 512))
		}
		body := rc.small[:4+rest]
		copy(body, hdr[9:])
		if _, err := io.ReadFull(rc.r, body[4:]); err != nil {
			return nil, unexpectedEOF(err)
		}
		err := parseStatus("read", body)
		var se *statusError
		switch {
		case errors.As(err, &se) && se.code == fxEOF:
			s.eof = true
		case err == nil:
			return nil, protoErr("read: status OK instead of data")
		default:
			return nil, err
		}
	default:
		return nil, protoErr("read: reply of type %d", typ)
	}
	s.busy = false
	return s, nil
}
