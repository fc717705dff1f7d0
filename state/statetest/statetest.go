// Package statetest gives tests a real SQLite state in a temporary
// directory, with a deterministic clock.
package statetest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/im1dev/im1/state"
)

// Epoch is where the clocks of New start: 2026-11-21T00:00:00Z.
var Epoch = time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)

// Clock is a deterministic clock. Each Now returns the current time and
// then advances it by Step (0 keeps it still), so timestamps are distinct
// and the same on every run when calls happen in the same order.
type Clock struct {
	mu   sync.Mutex
	t    time.Time
	Step time.Duration
}

// NewClock starts a clock at start that advances by step per reading.
func NewClock(start time.Time, step time.Duration) *Clock {
	return &Clock{t: start, Step: step}
}

// Now returns the clock's time and advances it by Step.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.Step)
	return t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// New creates a state file in t.TempDir() with a clock starting at Epoch
// and stepping one second per reading; it is closed when the test ends.
func New(t testing.TB) *state.SQLite {
	t.Helper()
	return NewWithClock(t, NewClock(Epoch, time.Second))
}

// NewWithClock is New with the given clock.
func NewWithClock(t testing.TB, c *Clock) *state.SQLite {
	t.Helper()
	return Open(t, filepath.Join(t.TempDir(), "im1.state"), state.Options{Create: true, Now: c.Now})
}

// Open opens path with opts, failing the test on error; the state is
// closed when the test ends.
func Open(t testing.TB, path string, opts state.Options) *state.SQLite {
	t.Helper()
	s, err := state.OpenSQLite(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("open state: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close state: %v", err)
		}
	})
	return s
}
