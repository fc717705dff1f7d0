package state_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/im1dev/im1/state"
	"github.com/im1dev/im1/state/statetest"
)

const helperEnv = "IM1_STATE_TEST_HELPER"

// TestHelperProcess is not a test: it is the other process of the lock
// tests. It takes the lock on the state named in the environment, says
// "locked", and holds it until its stdin closes.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process only")
	}
	s, err := state.OpenSQLite(ctx, path, state.Options{})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	info := state.LockInfo{ID: "helper-lock", Operation: "apply", Who: "helper@test", PID: os.Getpid(), Created: statetest.Epoch}
	if err := s.Lock(ctx, info); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	code := 0
	if err := errors.Join(s.Unlock(ctx, info.ID), s.Close()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// lockInOtherProcess starts a process holding the lock on path; the
// returned func makes it unlock and waits for it to exit.
func lockInOtherProcess(t *testing.T, path string) (pid int, release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var once sync.Once
	release = func() { once.Do(func() { releaseOnce(t, cmd, stdin, done) }) }
	t.Cleanup(release)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	go func() {
		io.Copy(io.Discard, stdout)
		done <- cmd.Wait()
	}()
	if strings.TrimSpace(line) != "locked" {
		release()
		t.Fatalf("helper process said %q (%v)", line, err)
	}
	return cmd.Process.Pid, release
}

func releaseOnce(t *testing.T, cmd *exec.Cmd, stdin io.Closer, done <-chan error) {
	stdin.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("helper process: %v", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Error("helper process did not exit")
	}
}

func TestLockHeldByOtherProcess(t *testing.T) {
	s := statetest.New(t)
	pid, release := lockInOtherProcess(t, s.Path())

	start := time.Now()
	err := s.Lock(ctx, state.LockInfo{ID: "mine", Operation: "apply", Who: "me@here", PID: os.Getpid()})
	var locked *state.LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("Lock = %v, want *LockedError", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("Lock took %v, want it to fail fast", time.Since(start))
	}
	h := locked.Holder
	if h.ID != "helper-lock" || h.PID != pid || h.Who != "helper@test" || h.Operation != "apply" {
		t.Errorf("holder = %+v, want the helper (pid %d)", h, pid)
	}
	for _, want := range []string{"helper@test", "helper-lock", "force-unlock", fmt.Sprint(pid)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if got, err := s.LockHolder(ctx); err != nil || got == nil || got.ID != "helper-lock" {
		t.Errorf("LockHolder = %+v, %v", got, err)
	}

	release()
	if err := s.Lock(ctx, state.LockInfo{ID: "mine"}); err != nil {
		t.Errorf("Lock after the other process released: %v", err)
	}
}

func TestLockWithTimeout(t *testing.T) {
	s := statetest.New(t)
	_, release := lockInOtherProcess(t, s.Path())
	info := state.LockInfo{ID: "mine", Operation: "apply"}

	tests := []struct {
		name    string
		timeout time.Duration
		min     time.Duration
	}{
		{"try once", 0, 0},
		{"retry until timeout", 150 * time.Millisecond, 150 * time.Millisecond},
	}
	for _, tc := range tests {
		start := time.Now()
		err := state.LockWithTimeout(ctx, s, info, tc.timeout)
		var locked *state.LockedError
		if !errors.As(err, &locked) {
			t.Errorf("%s: err = %v, want *LockedError", tc.name, err)
		}
		if d := time.Since(start); d < tc.min || d > tc.min+2*time.Second {
			t.Errorf("%s: gave up after %v, want about %v", tc.name, d, tc.min)
		}
	}

	// Released while we wait: the retry takes it.
	go func() {
		time.Sleep(100 * time.Millisecond)
		release()
	}()
	if err := state.LockWithTimeout(ctx, s, info, 10*time.Second); err != nil {
		t.Fatalf("LockWithTimeout while the holder releases: %v", err)
	}
	if h, _ := s.LockHolder(ctx); h == nil || h.ID != "mine" {
		t.Errorf("holder = %+v", h)
	}
}

func TestUnlockAndForceUnlock(t *testing.T) {
	s := statetest.New(t)
	held := state.LockInfo{ID: "held", Operation: "apply", Who: "a@b", PID: 42}
	if err := s.Lock(ctx, held); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, held); err != nil {
		t.Errorf("re-lock with the same ID: %v", err)
	}
	for name, unlock := range map[string]func(string) error{
		"Unlock":      func(id string) error { return s.Unlock(ctx, id) },
		"ForceUnlock": func(id string) error { return s.ForceUnlock(ctx, id) },
	} {
		if err := unlock("wrong"); err == nil || !strings.Contains(err.Error(), "held") {
			t.Errorf("%s(wrong) = %v, want an error naming the holder's ID", name, err)
		}
	}
	if h, _ := s.LockHolder(ctx); h == nil {
		t.Fatal("wrong-ID unlock removed the lock")
	}
	if err := s.ForceUnlock(ctx, "held"); err != nil {
		t.Fatalf("ForceUnlock: %v", err)
	}
	if h, err := s.LockHolder(ctx); h != nil || err != nil {
		t.Errorf("LockHolder after ForceUnlock = %+v, %v", h, err)
	}
	if err := s.Unlock(ctx, "held"); err == nil || !strings.Contains(err.Error(), "not locked") {
		t.Errorf("Unlock of an unlocked state = %v", err)
	}
	audit, err := s.Audit(ctx)
	if err != nil || len(audit) != 1 || audit[0].Operation != "force-unlock" || !strings.Contains(audit[0].Detail, `"held"`) {
		t.Errorf("audit after force-unlock = %+v, %v", audit, err)
	}
	if serial(t, s) != 0 {
		t.Errorf("locking moved the serial to %d", serial(t, s))
	}
}

func TestExpiredLockIsTakenOver(t *testing.T) {
	clock := statetest.NewClock(statetest.Epoch, 0)
	s := statetest.NewWithClock(t, clock)
	old := state.LockInfo{ID: "old", Who: "gone@host", Created: clock.Now(), Expires: clock.Now().Add(time.Minute)}
	if err := s.Lock(ctx, old); err != nil {
		t.Fatal(err)
	}
	next := state.LockInfo{ID: "next"}
	var locked *state.LockedError
	if err := s.Lock(ctx, next); !errors.As(err, &locked) || locked.Holder.ID != "old" {
		t.Fatalf("Lock before expiry = %v", err)
	}
	clock.Advance(2 * time.Minute)
	if err := s.Lock(ctx, next); err != nil {
		t.Fatalf("Lock after expiry: %v", err)
	}
	h, _ := s.LockHolder(ctx)
	if h == nil || h.ID != "next" || !h.Created.Equal(clock.Now()) || !h.Expires.IsZero() {
		t.Errorf("holder = %+v", h)
	}
	if err := s.Unlock(ctx, "old"); err == nil {
		t.Error("the expired holder unlocked its successor")
	}
}
