package inflate

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/iotest"

	kzlib "github.com/klauspost/compress/zlib"
)

// tableish is n bytes like an EMIS extract: quoted fields, GUIDs, dates,
// repeated values, so it compresses about 5x.
func tableish(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, "\"{%08X-1C2B-4D3E-8F90-%012X}\",\"A8100%d\",\"2026-11-%02d\",\"%d\",\"\",\"true\"\r\n",
			rng.Uint32(), rng.Uint64()&0xffffffffffff, rng.IntN(3), 1+rng.IntN(28), rng.IntN(1000))
	}
	return b.Bytes()[:n]
}

// inputs are plaintexts of every kind the encoders below treat
// differently: empty, tiny, runs (distance 1), short periods (distances
// 2-7), random (stored blocks), table-like, and mixes longer than the
// window and the decoder's rounds.
func inputs() map[string][]byte {
	rng := rand.New(rand.NewPCG(7, 7))
	random := make([]byte, 300<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	period := func(p, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + i%p)
		}
		return b
	}
	mixed := append(append(append([]byte{}, tableish(100<<10, 1)...), random[:70<<10]...), tableish(600<<10, 2)...)
	return map[string][]byte{
		"empty":    nil,
		"one":      {'x'},
		"run":      bytes.Repeat([]byte{'z'}, 100<<10),
		"period2":  period(2, 5000),
		"period3":  period(3, 70000),
		"period7":  period(7, 9999),
		"period9":  period(9, 9999),
		"random":   random,
		"table":    tableish(1<<20, 3),
		"mixed":    mixed,
		"small":    tableish(777, 4),
		"boundary": tableish(outSize+histSize+1, 5),
	}
}

func deflate(t testing.TB, data []byte, level int) []byte {
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func zlibbed(t testing.TB, data []byte, level int) []byte {
	var b bytes.Buffer
	w, err := zlib.NewWriterLevel(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

var levels = []int{flate.NoCompression, flate.HuffmanOnly, flate.BestSpeed, 4, flate.DefaultCompression, flate.BestCompression}

// readers wrap the compressed input the ways the decoder's input paths
// differ: all at once, a byte at a time, in halves, and with the final
// data arriving with io.EOF.
var readers = map[string]func(io.Reader) io.Reader{
	"whole":   func(r io.Reader) io.Reader { return r },
	"onebyte": iotest.OneByteReader,
	"half":    iotest.HalfReader,
	"dataerr": iotest.DataErrReader,
	"bufio":   func(r io.Reader) io.Reader { return bufio.NewReaderSize(r, 4096) },
}

// raceEnabled is set under the race detector (race_test.go).
var raceEnabled bool

func TestInflateMatchesFlate(t *testing.T) {
	for name, data := range inputs() {
		if raceEnabled && len(data) > 128<<10 {
			data = data[:128<<10]
		}
		for _, level := range levels {
			comp := deflate(t, data, level)
			zcomp := zlibbed(t, data, level)
			for rname, wrap := range readers {
				if rname == "onebyte" && len(comp) > 200<<10 {
					continue // slow, and the short inputs cover it
				}
				got, err := io.ReadAll(NewReader(wrap(bytes.NewReader(comp))))
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%s level %d %s: deflate: err %v, %d bytes, want %d", name, level, rname, err, len(got), len(data))
				}
				zr, err := NewZlibReader(wrap(bytes.NewReader(zcomp)))
				if err != nil {
					t.Fatalf("%s level %d %s: zlib header: %v", name, level, rname, err)
				}
				got, err = io.ReadAll(zr)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%s level %d %s: zlib: err %v, %d bytes, want %d", name, level, rname, err, len(got), len(data))
				}
			}
		}
	}
}

// compare decodes comp with compress/flate (or compress/zlib) and with
// this package: both must succeed with the same bytes or both fail, and
// on failure return the same bytes as far as both go. Outputs are read up to maxOut bytes (a few bytes of
// input can stand for megabytes); past that only the prefixes are
// compared.
func compare(t testing.TB, comp []byte, isZlib bool, wrap func(io.Reader) io.Reader, maxOut int64) {
	t.Helper()
	var want, got []byte
	var werr, gerr error
	readAll := func(r io.Reader) ([]byte, error) {
		b, err := io.ReadAll(io.LimitReader(r, maxOut+1))
		if err == nil && int64(len(b)) > maxOut {
			err = errTooLong
		}
		return b, err
	}
	if isZlib {
		var zr io.Reader
		if zr, werr = zlib.NewReader(bytes.NewReader(comp)); werr == nil {
			want, werr = readAll(zr)
		}
		var r *Reader
		if r, gerr = NewZlibReader(wrap(bytes.NewReader(comp))); gerr == nil {
			got, gerr = readAll(r)
		}
	} else {
		want, werr = readAll(flate.NewReader(bytes.NewReader(comp)))
		got, gerr = readAll(NewReader(wrap(bytes.NewReader(comp))))
	}
	if werr == errTooLong || gerr == errTooLong {
		n := min(len(want), len(got))
		if !bytes.Equal(want[:n], got[:n]) {
			t.Fatalf("outputs differ within the first %d bytes (zlib %v)", n, isZlib)
		}
		return
	}
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("verdicts differ (zlib %v): compress/flate %v, inflate %v", isZlib, werr, gerr)
	}
	if werr == nil && !bytes.Equal(want, got) {
		t.Fatalf("outputs differ (zlib %v): %d and %d bytes", isZlib, len(want), len(got))
	}
	// On error, one output is a prefix of the other: they may stop a few
	// symbols apart (compress/flate asks for as many bits as the block's
	// end-of-block code before it decodes any symbol).
	if n := min(len(want), len(got)); werr != nil && !bytes.Equal(want[:n], got[:n]) {
		t.Fatalf("on error (%v / %v) the outputs differ within the first %d bytes", werr, gerr, n)
	}
}

var errTooLong = errors.New("output over the limit")

// TestInflateDamaged flips, truncates and extends valid streams: the
// verdicts and outputs must match compress/flate's.
func TestInflateDamaged(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	n := 40 << 10
	if raceEnabled {
		n = 10 << 10
	}
	in := inputs()
	// In name order: the damage drawn from rng must fall on the same
	// streams in every run.
	for _, name := range slices.Sorted(maps.Keys(in)) {
		data := in[name]
		if len(data) > n {
			data = data[:n]
		}
		for _, level := range levels {
			for _, isZlib := range []bool{false, true} {
				comp := deflate(t, data, level)
				if isZlib {
					comp = zlibbed(t, data, level)
				}
				for i := range 12 {
					c := append([]byte{}, comp...)
					switch {
					case i == 0:
						c = append(c, 1, 2, 3) // trailing bytes are not read as data
					case len(c) == 0:
						continue
					case i < 8:
						c = c[:rng.IntN(len(c))]
					default:
						for range 1 + rng.IntN(3) {
							c[rng.IntN(len(c))] ^= byte(1 << rng.IntN(8))
						}
					}
					for rname, wrap := range readers {
						if (rname == "onebyte" || rname == "bufio") && len(c) > 4<<10 {
							continue
						}
						t.Run(fmt.Sprintf("%s/%d/%v/%d/%s", name, level, isZlib, i, rname), func(t *testing.T) {
							compare(t, c, isZlib, wrap, 1<<30)
						})
					}
				}
			}
		}
	}
}

// Hand-made streams for the rules compress/flate applies.
func TestInflateEdgeCases(t *testing.T) {
	for _, c := range [][]byte{
		{},                       // no block
		{0x01, 0, 0, 0xff, 0xff}, // final empty stored block
		{0x01, 1, 0, 0xfe, 0xff, 'a'},
		{0x01, 1, 0, 0xff, 0xff, 'a'}, // NLEN wrong
		{0x07},                        // reserved block type
		{0x03, 0x00},                  // fixed, EOB
		{0x02},                        // fixed, not final, then nothing
		{0x63, 0x18, 0x05, 0x00},      // fixed: distance before any output
		{0x05, 0xe0, 0xff, 0x01},      // dynamic, truncated
		{0xed, 0xc0, 0x01, 0x01, 0x00, 0x00, 0x00, 0x40, 0x20, 0xff, 0x57, 0x1b, 0x42, 0x2c, 0x4f}, // zlib's degenerate code test
	} {
		for _, wrap := range readers {
			compare(t, c, false, wrap, 1<<30)
		}
	}
	// zlib headers: a preset dictionary is accepted only with an empty
	// one's ID (as compress/zlib does without a dictionary).
	body := deflate(t, []byte("hello, hello"), 6)
	adler := []byte{0x1d, 0xd5, 0x04, 0x6c}
	for _, h := range [][]byte{{0x78, 0x9c}, {0x78, 0xbb, 0, 0, 0, 1}, {0x78, 0xbb, 0, 0, 0, 2}, {0x88, 0x98}, {0x79, 0x9c}, {0x78}} {
		c := append(append(append([]byte{}, h...), body...), adler...)
		compare(t, c, true, readers["whole"], 1<<30)
		compare(t, h, true, readers["whole"], 1<<30)
	}
}

func FuzzInflate(f *testing.F) {
	for _, data := range inputs() {
		if len(data) > 8<<10 {
			data = data[:8<<10]
		}
		for _, level := range levels {
			f.Add(deflate(f, data, level), byte(0))
			f.Add(zlibbed(f, data, level), byte(1))
		}
	}
	f.Fuzz(func(t *testing.T, comp []byte, mode byte) {
		wrap := readers["whole"]
		switch mode >> 1 & 3 {
		case 1:
			wrap = readers["onebyte"]
		case 2:
			wrap = readers["half"]
		case 3:
			wrap = readers["dataerr"]
		}
		compare(t, comp, mode&1 == 1, wrap, 1<<20)
	})
}

func BenchmarkInflate(b *testing.B) {
	data := tableish(16<<20, 9)
	comp := zlibbed(b, data, 6)
	b.Run("inflate", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		buf := make([]byte, 64<<10)
		for b.Loop() {
			r, err := NewZlibReader(bytes.NewReader(comp))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	// klauspost/compress was the fast path's decompressor before this one.
	b.Run("klauspost-zlib", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		buf := make([]byte, 64<<10)
		for b.Loop() {
			r, err := kzlib.NewReader(bufio.NewReaderSize(bytes.NewReader(comp), 64<<10))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("compress-zlib", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		buf := make([]byte, 64<<10)
		for b.Loop() {
			r, err := zlib.NewReader(bufio.NewReaderSize(bytes.NewReader(comp), 64<<10))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
