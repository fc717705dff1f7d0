package sftpsite_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/emis/sftpsite"
)

// Transport faults are injected by emissim only: a real sshd cannot be told
// to drop a connection after N bytes or to stall one file.
func TestTransportFaults(t *testing.T) {
	const name = "291_CareRecord_Observation_20261121090000_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.gpg"
	const size = 5 << 20
	cases := []struct {
		name   string
		faults emissim.TransportFaults
		tune   func(*sftpsite.Config)
		// run exercises the client; the site holds one file name of size.
		run func(t *testing.T, ctx context.Context, s *site, c *sftpsite.Client, sum [32]byte)
	}{
		{
			name:   "dropped mid-file resumes",
			faults: emissim.TransportFaults{DropAfterBytes: 1 << 20, DropFile: name},
			run: func(t *testing.T, ctx context.Context, s *site, c *sftpsite.Client, sum [32]byte) {
				if got := fetchSum(t, ctx, c, name, size); got != sum {
					t.Fatal("sha256 differs after resume")
				}
				if n := s.emis.Connections(); n != 2 {
					t.Errorf("%d connections, want 2 (the drop, then the resume)", n)
				}
			},
		},
		{
			name:   "dropped with no retries left fails",
			faults: emissim.TransportFaults{DropAfterBytes: 1 << 20},
			tune:   func(cfg *sftpsite.Config) { cfg.Retries = -1 },
			run: func(t *testing.T, ctx context.Context, s *site, c *sftpsite.Client, sum [32]byte) {
				n, err := c.Fetch(ctx, name, io.Discard, size)
				if err == nil || n >= size {
					t.Fatalf("Fetch = %d, %v; want a short read and an error", n, err)
				}
			},
		},
		{
			name:   "stall longer than idle timeout fails in bounded time",
			faults: emissim.TransportFaults{StallFile: name, StallFor: time.Minute},
			tune:   func(cfg *sftpsite.Config) { cfg.IdleTimeout, cfg.Retries = 300*time.Millisecond, 1 },
			run: func(t *testing.T, ctx context.Context, s *site, c *sftpsite.Client, sum [32]byte) {
				start := time.Now()
				_, err := c.Fetch(ctx, name, io.Discard, size)
				if !errors.Is(err, sftpsite.ErrIdle) {
					t.Fatalf("err = %v, want ErrIdle", err)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("stalled fetch took %s to fail", d)
				}
			},
		},
		{
			name:   "short stall is retried",
			faults: emissim.TransportFaults{StallFile: name, StallFor: 500 * time.Millisecond},
			tune:   func(cfg *sftpsite.Config) { cfg.IdleTimeout, cfg.Retries = 200*time.Millisecond, 5 },
			run: func(t *testing.T, ctx context.Context, s *site, c *sftpsite.Client, sum [32]byte) {
				if got := fetchSum(t, ctx, c, name, size); got != sum {
					t.Fatal("sha256 differs")
				}
			},
		},
		{
			name:   "cancel during stall returns promptly",
			faults: emissim.TransportFaults{StallFile: name, StallFor: time.Minute},
			tune:   func(cfg *sftpsite.Config) { cfg.IdleTimeout = 2 * time.Second },
			run: func(t *testing.T, ctx context.Context, s *site, c *sftpsite.Client, sum [32]byte) {
				ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancel()
				start := time.Now()
				_, err := c.Fetch(ctx, name, io.Discard, size)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want context.DeadlineExceeded", err)
				}
				if d := time.Since(start); d > time.Second {
					t.Errorf("cancelled fetch took %s to return", d)
				}
			},
		},
		{
			name:   "close during stall ends fetch",
			faults: emissim.TransportFaults{StallFile: name, StallFor: time.Minute},
			run: func(t *testing.T, ctx context.Context, s *site, c *sftpsite.Client, sum [32]byte) {
				errc := make(chan error, 1)
				go func() {
					_, err := c.Fetch(ctx, name, io.Discard, size)
					errc <- err
				}()
				time.Sleep(100 * time.Millisecond)
				start := time.Now()
				c.Close()
				select {
				case err := <-errc:
					if err == nil {
						t.Fatal("Fetch succeeded")
					}
				case <-time.After(5 * time.Second):
					t.Fatal("Fetch not ended by Close")
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("Close took %s", d)
				}
				if _, err := c.List(ctx); !errors.Is(err, sftpsite.ErrClosed) {
					t.Errorf("List after Close: %v, want ErrClosed", err)
				}
			},
		},
		{
			name:   "growing file",
			faults: emissim.TransportFaults{GrowingFile: name, GrowSteps: 3},
			run: func(t *testing.T, ctx context.Context, s *site, c *sftpsite.Client, sum [32]byte) {
				first := listSize(t, ctx, c, name)
				if first >= size {
					t.Fatalf("first listing reports %d, want less than %d", first, size)
				}
				// Fetching what the listing showed finds the file moved on.
				if _, err := c.Fetch(ctx, name, io.Discard, first); !errors.Is(err, sftpsite.ErrChanged) {
					t.Fatalf("Fetch during upload: err = %v, want ErrChanged", err)
				}
				// The size grows between listings, then settles.
				var sizes []int64
				for range 3 {
					sizes = append(sizes, listSize(t, ctx, c, name))
				}
				if sizes[len(sizes)-1] != size || sizes[len(sizes)-2] != size {
					t.Fatalf("sizes after the upload = %v, want %d settled", sizes, size)
				}
				if got := fetchSum(t, ctx, c, name, size); got != sum {
					t.Fatal("sha256 differs once the upload completed")
				}
			},
		},
	}
	for _, tc := range cases {
		for _, p := range readPaths {
			t.Run(tc.name+"/"+p.name, func(t *testing.T) {
				ctx := testCtx(t)
				s := startEmissim(t, tc.faults)
				sum := writeRandom(t, s.dir, name, size, 42)
				cfg := p.cfg(s.cfg)
				if tc.tune != nil {
					tc.tune(&cfg)
				}
				c := dial(t, ctx, cfg)
				tc.run(t, ctx, s, c, sum)
				checkPath(t, c, p.raw)
			})
		}
	}
}

func listSize(t *testing.T, ctx context.Context, c *sftpsite.Client, name string) int64 {
	t.Helper()
	ents, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name == name {
			return e.Size
		}
	}
	t.Fatalf("%s not listed", name)
	return 0
}

// Concurrent fetches share one connection; a drop under one of them is
// survived by all.
func TestConcurrentFetchesSurviveDrop(t *testing.T) {
	for _, p := range readPaths {
		t.Run(p.name, func(t *testing.T) {
			ctx := testCtx(t)
			s := startEmissim(t, emissim.TransportFaults{DropAfterBytes: 512 << 10, DropFile: "b.gpg"})
			names := []string{"a.gpg", "b.gpg", "c.gpg", "d.gpg"}
			sums := map[string][32]byte{}
			for i, n := range names {
				sums[n] = writeRandom(t, s.dir, n, 3<<20, uint64(100+i))
			}
			c := dial(t, ctx, p.cfg(s.cfg))
			errs := make(chan error, len(names))
			for _, n := range names {
				go func() {
					h := sha256.New()
					_, err := c.Fetch(ctx, n, h, 3<<20)
					if err == nil && [32]byte(h.Sum(nil)) != sums[n] {
						err = errors.New(n + ": sha256 differs")
					}
					errs <- err
				}()
			}
			for range names {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			checkPath(t, c, p.raw)
		})
	}
}
