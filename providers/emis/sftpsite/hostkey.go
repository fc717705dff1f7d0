package sftpsite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ErrNoHostKey is returned by Dial when neither HostKeys nor KnownHostsFile
// is set: im1 never trusts a key on first use (faults.md §1.5, §4.2 row 26).
var ErrNoHostKey = errors.New("sftpsite: no host key pinned (set host_key or known_hosts_file; run `ssh-keyscan` or im1's ScanHostKey to obtain it); trust on first use is refused")

// HostKeyError reports a server key that is not the pinned one (Unknown is
// false: possibly a man in the middle) or a host with no pinned key at all
// in the known_hosts file (Unknown is true).
type HostKeyError struct {
	Host    string
	Want    []string // SHA256 fingerprints of the pinned keys
	Got     string   // SHA256 fingerprint the server presented
	Unknown bool
}

func (e *HostKeyError) Error() string {
	if e.Unknown {
		return fmt.Sprintf("host key for %s unknown: got %s, no key pinned for this host", e.Host, e.Got)
	}
	return fmt.Sprintf("host key for %s changed: got %s, pinned %s", e.Host, e.Got, strings.Join(e.Want, ", "))
}

// hostKeyCheck builds the host key callback and the host key algorithms to
// ask for. Asking only for the pinned keys' algorithms matters: a server
// with both an RSA and an ed25519 key would otherwise present whichever the
// client prefers, and a correct RSA pin would look like a changed key.
func (cfg *Config) hostKeyCheck(addr string) (ssh.HostKeyCallback, []string, error) {
	switch {
	case len(cfg.HostKeys) > 0 && cfg.KnownHostsFile != "":
		return nil, nil, errors.New("sftpsite: set either host keys or a known_hosts file, not both")
	case len(cfg.HostKeys) > 0:
		pins := make([]ssh.PublicKey, 0, len(cfg.HostKeys))
		for i, line := range cfg.HostKeys {
			k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
			if err != nil {
				return nil, nil, fmt.Errorf("sftpsite: host key %d: %w", i+1, err)
			}
			pins = append(pins, k)
		}
		return pinned(pins), algorithms(pins), nil
	case cfg.KnownHostsFile != "":
		cb, err := knownhosts.New(cfg.KnownHostsFile)
		if err != nil {
			return nil, nil, fmt.Errorf("sftpsite: known_hosts: %w", err)
		}
		keys, err := knownKeys(cfg.KnownHostsFile, addr, cb)
		if err != nil {
			return nil, nil, err
		}
		return knownHostsCallback(cb), algorithms(keys), nil
	default:
		return nil, nil, ErrNoHostKey
	}
}

func pinned(pins []ssh.PublicKey) ssh.HostKeyCallback {
	return func(host string, _ net.Addr, key ssh.PublicKey) error {
		for _, p := range pins {
			if bytes.Equal(p.Marshal(), key.Marshal()) {
				return nil
			}
		}
		want := make([]string, len(pins))
		for i, p := range pins {
			want[i] = ssh.FingerprintSHA256(p)
		}
		return &HostKeyError{Host: host, Want: want, Got: ssh.FingerprintSHA256(key)}
	}
}

func knownHostsCallback(cb ssh.HostKeyCallback) ssh.HostKeyCallback {
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(host, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			want := make([]string, len(ke.Want))
			for i, w := range ke.Want {
				want[i] = ssh.FingerprintSHA256(w.Key)
			}
			return &HostKeyError{Host: host, Want: want, Got: ssh.FingerprintSHA256(key), Unknown: len(want) == 0}
		}
		var re *knownhosts.RevokedError
		if errors.As(err, &re) {
			return fmt.Errorf("host key for %s is revoked (%s:%d): %w", host, re.Revoked.Filename, re.Revoked.Line, err)
		}
		return err
	}
}

// knownKeys returns the keys of the known_hosts file that cb accepts for
// addr, by asking cb about each key of the file: that honours hashed host
// names, patterns and ports exactly as the real check does.
func knownKeys(file, addr string, cb ssh.HostKeyCallback) ([]ssh.PublicKey, error) {
	rest, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("sftpsite: known_hosts: %w", err)
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	remote := &net.TCPAddr{IP: net.ParseIP(host), Port: p}
	if remote.IP == nil {
		remote.IP = net.IPv4zero
	}
	var keys []ssh.PublicKey
	for len(rest) > 0 {
		var key ssh.PublicKey
		_, _, key, _, rest, err = ssh.ParseKnownHosts(rest)
		if err != nil {
			break // io.EOF at the end; knownhosts.New already rejected bad files
		}
		if cb(addr, remote, key) == nil {
			keys = append(keys, key)
		}
	}
	return keys, nil
}

// algorithms lists the host key algorithms that can present keys.
func algorithms(keys []ssh.PublicKey) []string {
	var out []string
	add := func(algos ...string) {
		for _, a := range algos {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	for _, k := range keys {
		if k.Type() == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		} else {
			add(k.Type())
		}
	}
	return out
}

// errScanned stops the handshake once ScanHostKey has the key.
var errScanned = errors.New("sftpsite: host key scanned")

// ScanHostKey connects to host:port and returns the host key the server
// presents, without authenticating. It exists so an operator (or a test, or
// `im1 demo`) can print the key to pin; apply itself never trusts a key it
// has not been given.
func ScanHostKey(ctx context.Context, host string, port int) (ssh.PublicKey, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sftpsite: scan %s: %w", addr, err)
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	var got ssh.PublicKey
	_, _, _, err = ssh.NewClientConn(nc, addr, &ssh.ClientConfig{
		User: "im1-scan",
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = key
			return errScanned
		},
	})
	if got != nil {
		return got, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("sftpsite: scan %s: %w", addr, ctx.Err())
	}
	return nil, fmt.Errorf("sftpsite: scan %s: %w", addr, err)
}
