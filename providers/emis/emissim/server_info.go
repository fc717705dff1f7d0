package emissim

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// ConnectInfoVersion is the version of the ConnectInfo document.
const ConnectInfoVersion = 1

// ConnectInfo is the JSON document a simulator publishes at start: how to
// reach it (DESIGN §2, handoff paragraph). `im1 demo` and tests read it.
type ConnectInfo struct {
	Version int    `json:"version"`
	Host    string `json:"host"`
	Port    int    `json:"port"`
	User    string `json:"user"`
	// HostKey is the server's key as an authorized_keys line, the value to
	// pin in `emis_site.host_key`.
	HostKey   string `json:"host_key"`
	RemoteDir string `json:"remote_dir"`
	// ClientKeyFile is the path of a private key the server accepts, when
	// the simulator generated one (see GenerateClientKey).
	ClientKeyFile string `json:"client_key_file,omitempty"`
}

// WriteConnectInfo writes info as JSON to path, filling in the version,
// host, port, user, host key and remote dir from the server where info
// leaves them empty. The file is written to a temporary name and renamed,
// so a reader never sees half of it.
func (s *Server) WriteConnectInfo(path string, info ConnectInfo) error {
	host, port := s.hostPort()
	if info.Version == 0 {
		info.Version = ConnectInfoVersion
	}
	if info.Host == "" {
		info.Host = host
	}
	if info.Port == 0 {
		info.Port = port
	}
	if info.User == "" {
		info.User = s.cfg.User
	}
	if info.HostKey == "" {
		info.HostKey = AuthorizedKeyLine(s.HostKey())
	}
	if info.RemoteDir == "" {
		info.RemoteDir = "/"
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return publishFile(path, append(b, '\n'), 0o644)
}

// ReadConnectInfo reads a document written by WriteConnectInfo.
func ReadConnectInfo(path string) (ConnectInfo, error) {
	var info ConnectInfo
	b, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("emissim: %s: %w", path, err)
	}
	if info.Version != ConnectInfoVersion {
		return info, fmt.Errorf("emissim: %s: unsupported connect info version %d", path, info.Version)
	}
	return info, nil
}

// AuthorizedKeyLine formats key as one authorized_keys line without the
// trailing newline ("ssh-ed25519 AAAA...").
func AuthorizedKeyLine(key ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

// GenerateClientKey writes a new passphrase-less ed25519 private key in
// OpenSSH format to path (mode 0600) and returns its public half, for a
// simulator that hands its client a key it accepts.
func GenerateClientKey(path string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "emissim client")
	if err != nil {
		return nil, err
	}
	if err := publishFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(pub)
}

func publishFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.partial")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
