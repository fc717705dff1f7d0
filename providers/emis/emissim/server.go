package emissim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// ServerConfig configures the simulator's SFTP server.
type ServerConfig struct {
	// Dir is the one flat directory served, read-only. Only its regular
	// files are visible: subdirectories and symlinks are not served.
	Dir string
	// User is the only login accepted ("im1" if empty).
	User string
	// HostKey is the server's identity; an ed25519 key is generated if nil.
	HostKey ssh.Signer
	// AuthorizedKeys are the client keys accepted. With none, every login
	// fails: there is no password authentication at all.
	AuthorizedKeys []ssh.PublicKey
	Faults         TransportFaults
}

// TransportFaults are the transport-level fault knobs (DESIGN §7,
// faults.md §4.2 rows 6 and 7). The zero value injects nothing.
type TransportFaults struct {
	// DropAfterBytes closes the whole SSH connection once this many bytes of
	// one open file have been served. It fires once per file name, so a
	// client that reconnects and resumes succeeds.
	DropAfterBytes int64
	// DropFile limits DropAfterBytes to one file name (empty = any file).
	DropFile string
	// StallFile's reads go unanswered for StallFor, counted from the first
	// read of it; later reads are answered normally.
	StallFile string
	StallFor  time.Duration
	// GrowingFile is reported as an upload in progress: each List or Stat
	// that includes it reports a larger size, reaching the real size after
	// GrowSteps of them (default 3); reads return only the bytes reported
	// so far.
	GrowingFile string
	GrowSteps   int
}

// Server is a running simulator SFTP server.
type Server struct {
	cfg     ServerConfig
	root    *os.Root
	ln      net.Listener
	hostKey ssh.Signer
	sshCfg  *ssh.ServerConfig
	done    chan struct{}
	wg      sync.WaitGroup
	stopCtx func() bool

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closed  bool
	dropped map[string]bool // file names whose drop fault has fired
	grows   int             // Lists/Stats of GrowingFile so far
	stallAt time.Time       // first read of StallFile
	accepts int             // SSH connections accepted
}

// StartServer listens on an ephemeral 127.0.0.1 port and serves until Close
// or until ctx is done.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("emissim: ServerConfig.Dir is empty")
	}
	if cfg.User == "" {
		cfg.User = "im1"
	}
	if cfg.Faults.GrowingFile != "" && cfg.Faults.GrowSteps <= 0 {
		cfg.Faults.GrowSteps = 3
	}
	hostKey := cfg.HostKey
	if hostKey == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if hostKey, err = ssh.NewSignerFromKey(priv); err != nil {
			return nil, err
		}
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("emissim: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("emissim: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		root:    root,
		ln:      ln,
		hostKey: hostKey,
		done:    make(chan struct{}),
		conns:   make(map[net.Conn]struct{}),
		dropped: make(map[string]bool),
	}
	s.sshCfg = &ssh.ServerConfig{
		// No PasswordCallback and no KeyboardInteractiveCallback: those
		// methods are not even offered.
		PublicKeyCallback: s.checkKey,
		ServerVersion:     "SSH-2.0-im1-emissim",
	}
	s.sshCfg.AddHostKey(hostKey)

	s.stopCtx = context.AfterFunc(ctx, func() { s.Close() })
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Addr is the listening address, "127.0.0.1:port".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Port is the listening port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// HostKey is the server's public host key, the value a client pins.
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// User is the one login the server accepts.
func (s *Server) User() string { return s.cfg.User }

// Connections is the number of TCP connections accepted so far (a client
// that resumed after a dropped connection has made two).
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepts
}

// Close stops listening, closes every connection and waits for all of the
// server's goroutines.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stopCtx()
		s.mu.Lock()
		s.closed = true
		close(s.done)
		s.closeErr = s.ln.Close()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		s.root.Close()
	})
	return s.closeErr
}

func (s *Server) checkKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if meta.User() == s.cfg.User {
		for _, k := range s.cfg.AuthorizedKeys {
			if bytes.Equal(k.Marshal(), key.Marshal()) {
				return &ssh.Permissions{Extensions: map[string]string{"pubkey-fp": ssh.FingerprintSHA256(key)}}, nil
			}
		}
	}
	return nil, errors.New("emissim: key not authorized")
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return // listener closed
		}
		if !s.track(nc) {
			nc.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(nc)
			s.serveConn(nc)
		}()
	}
}

func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.accepts++
	s.conns[nc] = struct{}{}
	return true
}

func (s *Server) untrack(nc net.Conn) {
	nc.Close()
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
}

// serverHandshakeTimeout bounds an unauthenticated connection.
const serverHandshakeTimeout = 10 * time.Second

func (s *Server) serveConn(nc net.Conn) {
	nc.SetDeadline(time.Now().Add(serverHandshakeTimeout))
	_, chans, reqs, err := ssh.NewServerConn(nc, s.sshCfg)
	if err != nil {
		return
	}
	nc.SetDeadline(time.Time{})
	// connDone is closed when the connection ends, so that stalled reads
	// give up with it.
	connDone := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(connDone)
	wg.Add(1)
	go func() {
		defer wg.Done()
		ssh.DiscardRequests(reqs)
	}()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveSession(nc, ch, chReqs, connDone)
		}()
	}
}

// serveSession answers the session's requests: the "sftp" subsystem and
// nothing else (no shell, no exec, no env).
func (s *Server) serveSession(nc net.Conn, ch ssh.Channel, reqs <-chan *ssh.Request, connDone <-chan struct{}) {
	defer ch.Close()
	started := false
	served := make(chan struct{})
	for req := range reqs {
		ok := !started && req.Type == "subsystem" && len(req.Payload) >= 4 && string(req.Payload[4:]) == "sftp"
		if req.WantReply {
			req.Reply(ok, nil)
		}
		if !ok {
			continue
		}
		started = true
		h := &sftpHandler{srv: s, conn: nc, connDone: connDone}
		rs := sftp.NewRequestServer(ch, sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h},
			// The client decides the read size; allow up to 256 KiB so a
			// client with a larger MaxPacket gets full reads, never short
			// ones (pkg/sftp's concurrent WriteTo needs full reads).
			sftp.WithRSMaxTxPacket(256<<10))
		go func() {
			defer close(served)
			rs.Serve()
			rs.Close()
			ch.Close()
		}()
	}
	if started {
		<-served
	}
}

// hostPort splits Addr for ConnectInfo.
func (s *Server) hostPort() (string, int) {
	host, port, _ := net.SplitHostPort(s.Addr())
	p, _ := strconv.Atoi(port)
	return host, p
}
