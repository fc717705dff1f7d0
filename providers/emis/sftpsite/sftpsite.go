// Package sftpsite is the client im1 uses against an EMIS secure SFTP site:
// it lists the one flat remote directory with pkg/sftp over
// golang.org/x/crypto/ssh, and downloads files through SFTP channels of
// its own on the same connection (raw.go: OPEN, FSTAT, READ and CLOSE,
// each reply read straight into its buffer), or through pkg/sftp where
// the server will not open one.
//
// What it promises (faults.md §1.4, §1.5, §4.2 rows 6, 7, 26):
//   - the server's host key is pinned (authorized_keys lines or a known_hosts
//     file); an unknown or changed key is a *HostKeyError, and there is no
//     trust on first use;
//   - a download is streamed with concurrent read requests (Concurrency
//     requests of MaxPacket bytes in flight, written in order), as large as
//     the server says it serves (limits@openssh.com), as OpenSSH's sftp
//     does (perf-baselines.md §2, bench/download.sh);
//   - a dropped or stalled connection is re-dialled with exponential backoff
//     and the download resumes at the offset reached;
//   - a file whose size differs from the listing, changes during the read,
//     or yields a different number of bytes than its size is reported
//     (ErrChanged, *SizeError), never passed off as complete.
//
// Names returned by List are the server's, raw: the caller validates them
// (filepath.IsLocal, os.Root) before using them as local paths. Fetch itself
// refuses any name that is not a single path element of the remote dir.
package sftpsite

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Config says how to reach one site. Zero durations and counts take the
// defaults noted beside them.
type Config struct {
	Host string
	Port int // default 22
	User string

	// AuthKeyFile is a private key file (OpenSSH or PEM format). If it is
	// passphrase-protected, the passphrase is read from the environment
	// variable PassphraseEnv.
	AuthKeyFile   string
	PassphraseEnv string
	// UseAgent also offers the keys of the ssh-agent at $SSH_AUTH_SOCK.
	UseAgent bool

	// HostKeys are the pinned server keys, authorized_keys format
	// ("ssh-ed25519 AAAA..."); any one may match. KnownHostsFile is the
	// alternative. One of the two is required.
	HostKeys       []string
	KnownHostsFile string

	// RemoteDir is the site's directory ("" = the login directory).
	RemoteDir string

	// ConnectTimeout bounds a dial and handshake (default 30s).
	ConnectTimeout time.Duration
	// IdleTimeout is how long a transfer or listing may go without progress
	// before the connection is dropped and retried (default 10min; EMIS
	// connections have been seen stalling on weekends).
	IdleTimeout time.Duration
	// Retries is how many times a failed dial or a dropped transfer is
	// retried (default 3; negative means none), with exponential backoff
	// from Backoff (default 1s, capped at 1min) and full jitter.
	Retries int
	Backoff time.Duration
	// Concurrency is the number of read requests in flight per file,
	// each with a buffer of MaxPacket bytes (default: enough for 8 MiB,
	// from 8 to 64: 32 of OpenSSH's 255 KiB, 64 of 32 KiB).
	Concurrency int
	// MaxPacket is the size of each read request, up to 261120 bytes
	// (255 KiB, OpenSSH's largest). The default, 0, asks a server that
	// offers the limits@openssh.com extension for its largest full read
	// and uses 32 KiB, which every server must support, with any other.
	// A server that answers a request with fewer bytes is asked again for
	// the rest, so a value that is too large is slower, never wrong.
	MaxPacket int

	// Getenv reads PassphraseEnv and SSH_AUTH_SOCK (os.Getenv if nil).
	Getenv func(string) string

	// noRaw reads files through pkg/sftp only (tests of that path).
	noRaw bool
}

// Defaults.
const (
	DefaultPort           = 22
	DefaultConnectTimeout = 30 * time.Second
	DefaultIdleTimeout    = 10 * time.Minute
	DefaultRetries        = 3
	DefaultBackoff        = time.Second
	// DefaultMaxPacket is the request size for a server that does not
	// offer limits@openssh.com; MaxRequestSize is OpenSSH's largest read.
	DefaultMaxPacket = 32 << 10
	MaxRequestSize   = 256<<10 - 1024
	// Without a configured Concurrency, about inFlight bytes are
	// requested at once: 32 requests of OpenSSH's 255 KiB, 64 of 32 KiB.
	inFlight       = 8 << 20
	minConcurrency = 8
	maxConcurrency = 64
	maxBackoff     = time.Minute
)

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Host == "" {
		return cfg, errors.New("sftpsite: host is empty")
	}
	if cfg.User == "" {
		return cfg, errors.New("sftpsite: user is empty")
	}
	if cfg.AuthKeyFile == "" && !cfg.UseAgent {
		return cfg, errors.New("sftpsite: no authentication configured (set auth_key_file or use the ssh agent)")
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Concurrency < 0 {
		cfg.Concurrency = 0
	}
	if cfg.MaxPacket < 0 {
		cfg.MaxPacket = 0
	}
	if cfg.MaxPacket > MaxRequestSize {
		return cfg, fmt.Errorf("sftpsite: max packet %d is above %d", cfg.MaxPacket, MaxRequestSize)
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	return cfg, nil
}

// Entry is one regular file of the remote directory.
type Entry struct {
	Name  string // raw, as the server sent it
	Size  int64
	MTime time.Time
}

// ErrChanged reports a remote file whose size or modification time differs
// from the listing, or changed while it was read: most likely still being
// uploaded. Fetch it again on a later run.
var ErrChanged = errors.New("remote file changed")

// SizeError reports a read that yielded a different number of bytes than
// the file's size while its size and time stayed put ("corrupted on
// transfer: sizes differ", as rclone says). The read stops one byte past
// the size, so for a file that runs on, Got is size+1.
type SizeError struct {
	Name      string
	Want, Got int64
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("sftpsite: %s: corrupted on transfer: sizes differ (read %d bytes, size %d)", e.Name, e.Got, e.Want)
}

// ErrIdle reports a connection that made no progress for IdleTimeout.
var ErrIdle = errors.New("connection stalled")

// ErrClosed reports use of a Client after Close.
var ErrClosed = errors.New("sftpsite: client closed")

// ErrBadName reports a name Fetch refuses: not one element of RemoteDir.
var ErrBadName = errors.New("sftpsite: not a plain file name")

// AuthError reports that the server refused every key offered.
type AuthError struct {
	User string
	Err  error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("sftpsite: authentication as %q refused: %v", e.User, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }
