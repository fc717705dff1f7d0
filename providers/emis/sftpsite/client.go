package sftpsite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Client is a connection to one site. It holds one SSH connection (re-dialled
// when it drops) and is safe for concurrent use: several Fetch calls share
// that connection's SFTP session.
type Client struct {
	cfg    Config
	addr   string
	sshCfg *ssh.ClientConfig
	agent  net.Conn

	mu          sync.Mutex
	cur         *session
	closed      bool
	fingerprint string

	bg sync.WaitGroup // transfers that outlive a cancelled Fetch

	// Fetch attempts read through a raw channel and through pkg/sftp.
	rawReads, sftpReads atomic.Int64
}

// session is one SSH connection with its SFTP client.
type session struct {
	ssh  *ssh.Client
	sftp *sftp.Client
	dead chan struct{} // closed when the connection has ended

	// reqSize is the size of each read request and conc the number in
	// flight per file (see requestSize).
	reqSize, conc int

	// Raw channels (raw.go) for Fetch: idle ones kept for the next
	// fetch; rawOff when the server refused one, or when the
	// configuration says to read through pkg/sftp only.
	rawMu   sync.Mutex
	rawIdle []*rawChan
	rawOff  bool

	closeOnce sync.Once
}

func (s *session) close() {
	s.closeOnce.Do(func() {
		// The SSH connection first: closing only the SFTP channel waits for
		// the server, which may be the thing that stalled.
		s.ssh.Close()
		s.sftp.Close()
	})
}

func (s *session) isDead() bool {
	select {
	case <-s.dead:
		return true
	default:
		return false
	}
}

// Dial connects to the site, verifying its host key and authenticating,
// with up to cfg.Retries retries of network failures. A host key or
// authentication failure is not retried.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	hostKeyCallback, algos, err := cfg.hostKeyCheck(addr)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, addr: addr}
	auth, err := c.authMethod()
	if err != nil {
		return nil, err
	}
	c.sshCfg = &ssh.ClientConfig{
		User: cfg.User,
		Auth: []ssh.AuthMethod{auth},
		HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
			if err := hostKeyCallback(host, remote, key); err != nil {
				return err
			}
			c.mu.Lock()
			c.fingerprint = ssh.FingerprintSHA256(key)
			c.mu.Unlock()
			return nil
		},
		HostKeyAlgorithms: algos,
		Timeout:           cfg.ConnectTimeout,
	}
	for attempt := 0; ; attempt++ {
		s, err := c.dial(ctx)
		if err == nil {
			c.cur = s
			return c, nil
		}
		if !retryableDial(err) || attempt >= cfg.Retries || ctx.Err() != nil {
			c.closeAgent()
			return nil, err
		}
		if err := c.sleep(ctx, attempt); err != nil {
			c.closeAgent()
			return nil, err
		}
	}
}

// authMethod offers the key file's key and, with UseAgent, the agent's keys,
// as one publickey method.
func (c *Client) authMethod() (ssh.AuthMethod, error) {
	var signers []ssh.Signer
	if f := c.cfg.AuthKeyFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("sftpsite: auth key: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			env := c.cfg.PassphraseEnv
			if env == "" || c.cfg.Getenv(env) == "" {
				return nil, fmt.Errorf("sftpsite: auth key %s is passphrase-protected; set passphrase_env and that variable", f)
			}
			signer, err = ssh.ParsePrivateKeyWithPassphrase(pem, []byte(c.cfg.Getenv(env)))
			if err != nil {
				// The error names no secret: x/crypto says only "decryption password incorrect".
				return nil, fmt.Errorf("sftpsite: auth key %s (passphrase from $%s): %w", f, env, err)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("sftpsite: auth key %s: %w", f, err)
		}
		signers = append(signers, signer)
	}
	var ag agent.ExtendedAgent
	if c.cfg.UseAgent {
		sock := c.cfg.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, errors.New("sftpsite: use of the ssh agent requested but SSH_AUTH_SOCK is not set")
		}
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("sftpsite: ssh agent: %w", err)
		}
		c.agent = conn
		ag = agent.NewClient(conn)
	}
	return ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		if ag == nil {
			return signers, nil
		}
		more, err := ag.Signers()
		if err != nil {
			return nil, err
		}
		return append(slices.Clip(signers), more...), nil
	}), nil
}

func (c *Client) closeAgent() {
	if c.agent != nil {
		c.agent.Close()
	}
}

// dial makes one connection attempt, bounded by ConnectTimeout and ctx.
func (c *Client) dial(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("sftpsite: dial %s: %w", c.addr, err)
	}
	// The handshake and the SFTP init have no context of their own: a
	// deadline and a close on cancel bound them.
	dl, _ := ctx.Deadline()
	nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	s, err := c.handshake(&bufConn{Conn: nc, r: bufio.NewReaderSize(nc, connReadBuffer)})
	if !stop() {
		if s != nil {
			s.close()
		}
		nc.Close()
		return nil, fmt.Errorf("sftpsite: connect %s: %w", c.addr, context.Cause(ctx))
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return s, nil
}

// bufConn reads its connection through a large buffer. x/crypto reads
// each SSH packet with two or three read calls (a 4 KiB bufio.Reader,
// then the rest of a 32 KiB packet); through this buffer one system call
// takes whatever has arrived, up to connReadBuffer, for one more copy in
// memory.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

const connReadBuffer = 256 << 10

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *Client) handshake(nc net.Conn) (*session, error) {
	conn, chans, reqs, err := ssh.NewClientConn(nc, c.addr, c.sshCfg)
	if err != nil {
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, hk
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			// x/crypto has no typed error for this.
			return nil, &AuthError{User: c.cfg.User, Err: err}
		}
		return nil, fmt.Errorf("sftpsite: connect %s: %w", c.addr, err)
	}
	sc := ssh.NewClient(conn, chans, reqs)
	// Fetch reads with ReadAt, one request per call of at most reqSize
	// bytes, so pkg/sftp's packet size only has to admit the largest.
	fc, err := sftp.NewClient(sc, sftp.UseFstat(true), sftp.MaxPacketUnchecked(MaxRequestSize))
	if err != nil {
		sc.Close()
		return nil, fmt.Errorf("sftpsite: start sftp on %s: %w", c.addr, err)
	}
	s := &session{ssh: sc, sftp: fc, dead: make(chan struct{}), rawOff: c.cfg.noRaw}
	s.reqSize, s.conc = c.requestSize(sc, fc)
	go func() {
		sc.Wait()
		close(s.dead)
	}()
	return s, nil
}

// requestSize picks the read request size and the number of requests in
// flight for a new session. A configured MaxPacket is used as it is.
// Otherwise a server that offers limits@openssh.com is asked for its
// largest full read (OpenSSH: 261120 bytes), capped at MaxRequestSize, and
// any other server gets the 32 KiB that every server must support. A
// server that answers less than asked costs more requests, not bytes:
// fetchOnce re-requests the rest of a short read.
func (c *Client) requestSize(sc *ssh.Client, fc *sftp.Client) (size, conc int) {
	size = c.cfg.MaxPacket
	if size == 0 {
		size = DefaultMaxPacket
		if _, ok := fc.HasExtension(limitsExt); ok {
			if n, err := readLimit(sc); err == nil {
				size = MaxRequestSize
				if n > 0 && n < MaxRequestSize {
					size = int(n)
				}
			}
		}
	}
	conc = c.cfg.Concurrency
	if conc == 0 {
		conc = min(maxConcurrency, max(minConcurrency, inFlight/size))
	}
	return size, conc
}

// retryableDial: network trouble is retried; a refused host key or login
// is not, since retrying cannot fix it.
func retryableDial(err error) bool {
	var hk *HostKeyError
	var ae *AuthError
	return !errors.As(err, &hk) && !errors.As(err, &ae) && !errors.Is(err, context.Canceled)
}

// session returns the live session, dialling once if there is none.
func (c *Client) session(ctx context.Context) (*session, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if s := c.cur; s != nil && !s.isDead() {
		c.mu.Unlock()
		return s, nil
	}
	c.mu.Unlock()

	s, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		s.close()
		return nil, ErrClosed
	}
	if cur := c.cur; cur != nil && !cur.isDead() {
		// Another caller reconnected first; use theirs.
		s.close()
		return cur, nil
	}
	c.cur = s
	return s, nil
}

// drop closes s (if it is still the current session, the next call dials).
func (c *Client) drop(s *session) {
	s.close()
	c.mu.Lock()
	if c.cur == s {
		c.cur = nil
	}
	c.mu.Unlock()
}

// sleep waits the backoff before retry attempt+1: exponential from Backoff,
// capped, with full jitter so that many clients do not retry in step.
func (c *Client) sleep(ctx context.Context, attempt int) error {
	d := c.cfg.Backoff << min(attempt, 16)
	d = min(d, maxBackoff)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HostKeyFingerprint is the SHA256 fingerprint of the server's host key as
// verified at the last handshake.
func (c *Client) HostKeyFingerprint() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fingerprint
}

// Close closes the connection and waits for any transfer a cancelled Fetch
// left winding down.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	s := c.cur
	c.cur = nil
	c.mu.Unlock()
	var err error
	if s != nil {
		err = s.ssh.Close()
		s.close()
	}
	c.bg.Wait()
	c.closeAgent()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// remotePath joins RemoteDir and a name.
func (c *Client) remotePath(name string) string {
	if c.cfg.RemoteDir == "" {
		return name
	}
	return path.Join(c.cfg.RemoteDir, name)
}

// List returns the regular files of RemoteDir (no directories, no
// symlinks), sorted by name. Names are returned raw.
func (c *Client) List(ctx context.Context) ([]Entry, error) {
	dir := c.cfg.RemoteDir
	if dir == "" {
		dir = "."
	}
	var out []Entry
	err := c.retry(ctx, func(s *session, wd *watchdog) error {
		infos, err := s.sftp.ReadDirContext(ctx, dir)
		if err != nil {
			return err
		}
		out = out[:0]
		for _, fi := range infos {
			if fi.Mode().IsRegular() {
				out = append(out, Entry{Name: fi.Name(), Size: fi.Size(), MTime: fi.ModTime()})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sftpsite: list %s: %w", dir, err)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// retry runs op on the live session under the idle watchdog, re-dialling
// and retrying (up to Retries) when the connection failed under it.
func (c *Client) retry(ctx context.Context, op func(*session, *watchdog) error) error {
	for attempt := 0; ; attempt++ {
		s, err := c.session(ctx)
		if err == nil {
			err = c.watch(ctx, s, op)
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !c.retryable(s, err) || attempt >= c.cfg.Retries {
			return err
		}
		if s != nil {
			c.drop(s)
		}
		if err := c.sleep(ctx, attempt); err != nil {
			return err
		}
	}
}

// retryable says whether err is the connection failing (retry on a new
// one) rather than an answer (a missing file, a refusal, a changed file) or
// the caller's writer failing.
func (c *Client) retryable(s *session, err error) bool {
	var we *writeError
	var se *SizeError
	var st *sftp.StatusError
	var rst *statusError
	switch {
	case errors.As(err, &we), errors.As(err, &se), errors.Is(err, ErrChanged), errors.Is(err, ErrBadName), errors.Is(err, ErrClosed):
		return false
	case errors.Is(err, ErrIdle):
		return true
	case s == nil:
		return retryableDial(err)
	case s.isDead():
		return true
	case errors.As(err, &st), errors.As(err, &rst), errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission):
		return false
	}
	return true
}

// watch runs op in its own goroutine so that ctx cancels promptly even when
// the server has stopped answering, while a watchdog drops the connection
// after IdleTimeout without progress. A cancelled op winds down in the
// background (its writer refuses further writes) and Close waits for it.
func (c *Client) watch(ctx context.Context, s *session, op func(*session, *watchdog) error) error {
	// bg.Add under mu, so that it cannot race with Close's bg.Wait.
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.bg.Add(1)
	c.mu.Unlock()
	wd := newWatchdog(c.cfg.IdleTimeout, func() { c.drop(s) })
	res := make(chan error, 1)
	go func() {
		defer c.bg.Done()
		defer wd.stop()
		err := op(s, wd)
		if err != nil && wd.fired() {
			err = fmt.Errorf("%w: no progress for %s", ErrIdle, c.cfg.IdleTimeout)
		}
		res <- err
	}()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		wd.cancel()
		return ctx.Err()
	}
}

// watchdog calls onIdle if touch is not called for idle. It also gates
// the op's writes to the caller's writer, so that none happens after a
// cancelled call has returned.
type watchdog struct {
	idle   time.Duration
	onIdle func()
	done   chan struct{}
	once   sync.Once

	mu   sync.Mutex
	last time.Time
	fire bool

	wmu       sync.Mutex
	cancelled bool
}

var errCancelled = errors.New("sftpsite: cancelled")

func newWatchdog(idle time.Duration, onIdle func()) *watchdog {
	w := &watchdog{idle: idle, last: time.Now(), done: make(chan struct{}), onIdle: onIdle}
	go w.run()
	return w
}

func (w *watchdog) run() {
	t := time.NewTicker(max(w.idle/8, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case now := <-t.C:
			w.mu.Lock()
			idle := now.Sub(w.last) >= w.idle
			w.fire = idle
			w.mu.Unlock()
			if idle {
				w.onIdle()
				return
			}
		}
	}
}

func (w *watchdog) touch() {
	w.mu.Lock()
	w.last = time.Now()
	w.mu.Unlock()
}

func (w *watchdog) fired() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fire
}

func (w *watchdog) stop() { w.once.Do(func() { close(w.done) }) }

// cancel refuses every later write; it waits for a write in progress.
func (w *watchdog) cancel() {
	w.wmu.Lock()
	w.cancelled = true
	w.wmu.Unlock()
}

// write passes p to dst unless cancelled, counting progress into *n.
func (w *watchdog) write(dst io.Writer, p []byte, n *int64) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.cancelled {
		return 0, errCancelled
	}
	m, err := dst.Write(p)
	*n += int64(m)
	if m > 0 {
		w.touch()
	}
	if err != nil {
		return m, &writeError{err}
	}
	return m, nil
}

// writeError marks a failure of the caller's writer: never retried.
type writeError struct{ err error }

func (e *writeError) Error() string { return "write: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }
