package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/im1dev/im1/providers"
)

// newProgress shows transfers as bars when stderr is a terminal, and as
// plain periodic lines otherwise (CI logs, files).
func newProgress(w io.Writer) (providers.Progress, func()) {
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond))
		return &bars{p: p}, p.Wait
	}
	return &lines{w: w, every: 10 * time.Second}, func() {}
}

type bars struct{ p *mpb.Progress }

func (b *bars) Start(name string, size int64) io.WriteCloser {
	bar := b.p.AddBar(size,
		mpb.PrependDecorators(decor.Name(shorten(name, 48), decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f"), decor.Name(" "), decor.AverageSpeed(decor.SizeB1024(0), "% .1f")),
		mpb.BarRemoveOnComplete(),
	)
	return &barWriter{bar: bar}
}

type barWriter struct{ bar *mpb.Bar }

func (w *barWriter) Write(b []byte) (int, error) { w.bar.IncrBy(len(b)); return len(b), nil }
func (w *barWriter) Close() error {
	if !w.bar.Completed() {
		w.bar.Abort(true)
	}
	return nil
}

// lines prints one line per transfer when it ends, and one every `every`
// while a long transfer runs.
type lines struct {
	w     io.Writer
	mu    sync.Mutex
	every time.Duration
}

func (l *lines) Start(name string, size int64) io.WriteCloser {
	lw := &lineWriter{l: l, name: name, size: size, start: time.Now(), done: make(chan struct{})}
	go lw.tick()
	return lw
}

type lineWriter struct {
	l     *lines
	name  string
	size  int64
	n     atomic.Int64
	start time.Time
	done  chan struct{}
	once  sync.Once
}

func (w *lineWriter) Write(b []byte) (int, error) { w.n.Add(int64(len(b))); return len(b), nil }

func (w *lineWriter) tick() {
	t := time.NewTicker(w.l.every)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
			w.print("downloading")
		}
	}
}

func (w *lineWriter) print(verb string) {
	n := w.n.Load()
	secs := time.Since(w.start).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(n) / secs / (1 << 20)
	}
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	if w.size > 0 {
		fmt.Fprintf(w.l.w, "  %s %s: %d/%d bytes (%.0f%%, %.1f MiB/s)\n", verb, w.name, n, w.size, 100*float64(n)/float64(w.size), rate)
	} else {
		fmt.Fprintf(w.l.w, "  %s %s: %d bytes (%.1f MiB/s)\n", verb, w.name, n, rate)
	}
}

func (w *lineWriter) Close() error {
	w.once.Do(func() {
		close(w.done)
		w.print("fetched")
	})
	return nil
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n+1:]
}
