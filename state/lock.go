package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/google/uuid"
)

// NewLockInfo describes a lock for operation held by this process, with a
// fresh random ID; ttl 0 means the lock never expires on its own.
func NewLockInfo(operation string, now time.Time, ttl time.Duration) LockInfo {
	li := LockInfo{
		ID:        uuid.NewString(),
		Operation: operation,
		Who:       CurrentWho(),
		PID:       os.Getpid(),
		Created:   now,
	}
	if ttl > 0 {
		li.Expires = now.Add(ttl)
	}
	return li
}

// CurrentWho is user@host for lock and audit records.
func CurrentWho() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return name + "@" + host
}

// LockWithTimeout takes the lock, retrying with a short backoff while
// another holder has it, for up to timeout (0: try once, as -lock-timeout=0s
// does in Terraform). It gives up with the last *LockedError. Errors other
// than *LockedError are returned at once.
func LockWithTimeout(ctx context.Context, s Store, info LockInfo, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	wait := 20 * time.Millisecond
	for {
		err := s.Lock(ctx, info)
		var locked *LockedError
		if err == nil || !errors.As(err, &locked) {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		t := time.NewTimer(min(wait, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, 500*time.Millisecond)
	}
}

// CheckLineage returns an error wrapping ErrLineage when s is not the state
// want was taken from (a saved plan, or a state of another configuration).
// want == "" stands for "there was no state": it matches only a state to
// which nothing has been committed yet (serial 0).
func CheckLineage(s Store, want string) error {
	m, err := s.Meta(context.Background())
	if err != nil {
		return err
	}
	if want == "" {
		if m.Serial == 0 {
			return nil
		}
		return fmt.Errorf("%w: expected no state, found lineage %s at serial %d", ErrLineage, m.Lineage, m.Serial)
	}
	if m.Lineage != want {
		return fmt.Errorf("%w: expected lineage %s, state has %s", ErrLineage, want, m.Lineage)
	}
	return nil
}
