package landing

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// helperEnv selects a helper role when the test binary re-executes itself
// to crash or run out of space without taking the test process with it.
const helperEnv = "IM1_LANDING_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "crash":
		helperCrash(os.Args[len(os.Args)-1])
	case "diskfull":
		helperDiskFull(os.Args[len(os.Args)-1])
	}
	os.Exit(3)
}

func helperCmd(t *testing.T, role, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", dir)
	cmd.Env = append(os.Environ(), helperEnv+"="+role)
	return cmd
}

// helperCrash writes half a file and dies with SIGKILL before Commit.
func helperCrash(path string) {
	d, err := OpenDir(path, 0o640, 0o750)
	if err != nil {
		os.Exit(2)
	}
	p, err := d.Create("b/Admin_Patient.csv")
	if err != nil {
		os.Exit(2)
	}
	p.Write(bytes.Repeat([]byte("half a row,"), 100000))
	p.bw.Flush()
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
}

// diskFullResult is what the disk-full helper reports on stdout.
type diskFullResult struct{ WriteErr, CommitErr string }

// helperDiskFull writes 1 MiB with a 64 KiB file size limit, the way a full
// disk fails a write (EFBIG here, ENOSPC there).
func helperDiskFull(path string) {
	signal.Ignore(syscall.SIGXFSZ)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 64 << 10, Max: 64 << 10}); err != nil {
		os.Exit(2)
	}
	d, err := OpenDir(path, 0o640, 0o750)
	if err != nil {
		os.Exit(2)
	}
	p, err := d.Create("Admin_Patient.csv")
	if err != nil {
		os.Exit(2)
	}
	var res diskFullResult
	chunk := bytes.Repeat([]byte("x"), 4096)
	for range 256 {
		if _, err := p.Write(chunk); err != nil {
			res.WriteErr = err.Error()
			break
		}
	}
	if err := p.Commit(); err != nil {
		res.CommitErr = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

func openTestDir(t *testing.T, fileMode, dirMode os.FileMode) (*Dir, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "landing")
	d, err := OpenDir(path, fileMode, dirMode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, path
}

func landFile(t *testing.T, d *Dir, rel, content string) {
	t.Helper()
	p, err := d.Create(rel)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestCreateCommitModes(t *testing.T) {
	// The second pair is wider than the usual umask 022 allows, so it
	// passes only if the modes are applied explicitly.
	for _, tc := range []struct{ file, dir os.FileMode }{{0o640, 0o750}, {0o664, 0o775}, {0o600, 0o700}} {
		t.Run(fmt.Sprintf("%o-%o", tc.file, tc.dir), func(t *testing.T) {
			old := syscall.Umask(0o022)
			defer syscall.Umask(old)
			d, path := openTestDir(t, tc.file, tc.dir)
			rel := filepath.Join("extract", "src", "2026-11-21", "b1", "Admin_Patient.csv")
			p, err := d.Create(rel)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Write([]byte("a,b\r\n1,2\r\n")); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Stat(rel); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("final name visible before Commit: %v", err)
			}
			if got, _ := d.Partials(); !slices.Equal(got, []string{filepath.ToSlash(rel) + PartialSuffix}) {
				t.Fatalf("Partials = %q", got)
			}
			if err := p.Commit(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(path, rel))
			if err != nil || string(b) != "a,b\r\n1,2\r\n" {
				t.Fatalf("landed %q, %v", b, err)
			}
			if got, _ := d.Partials(); len(got) != 0 {
				t.Fatalf("Partials after Commit = %q", got)
			}
			fi, err := d.Stat(rel)
			if err != nil || fi.Mode().Perm() != tc.file {
				t.Fatalf("file mode %v, want %v (%v)", fi.Mode().Perm(), tc.file, err)
			}
			for dir := filepath.Dir(rel); dir != "."; dir = filepath.Dir(dir) {
				fi, err := d.Stat(dir)
				if err != nil || fi.Mode().Perm() != tc.dir {
					t.Fatalf("%s mode %v, want %v (%v)", dir, fi.Mode().Perm(), tc.dir, err)
				}
			}
			if err := p.Abort(); err != nil {
				t.Fatalf("Abort after Commit: %v", err)
			}
			if _, err := d.Stat(rel); err != nil {
				t.Fatalf("Abort after Commit removed the file: %v", err)
			}
		})
	}
}

func TestAbort(t *testing.T) {
	d, _ := openTestDir(t, 0o640, 0o750)
	p, err := d.Create("T.csv")
	if err != nil {
		t.Fatal(err)
	}
	p.Write([]byte("data"))
	for range 2 {
		if err := p.Abort(); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := d.Partials(); len(got) != 0 {
		t.Fatalf("Partials after Abort = %q", got)
	}
	if _, err := d.Stat("T.csv"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat after Abort: %v", err)
	}
	if err := p.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	if _, err := p.Write([]byte("x")); err == nil {
		t.Fatal("Write after Abort succeeded")
	}
}

func TestRejectedPaths(t *testing.T) {
	d, _ := openTestDir(t, 0o640, 0o750)
	for _, rel := range []string{
		"", ".", "../x", "a/../../b", "/etc/passwd", `..\..\x`, `a\b`, "a\x00b", "a\nb", "a\rb",
		strings.Repeat("n", 300), "T.csv.partial",
	} {
		if p, err := d.Create(rel); err == nil {
			p.Abort()
			t.Errorf("Create(%q) succeeded", rel)
		}
	}
	for _, rel := range []string{"../x", "/etc/passwd", "a\x00b"} {
		if _, err := d.Open(rel); err == nil {
			t.Errorf("Open(%q) succeeded", rel)
		}
		if _, err := d.Stat(rel); err == nil {
			t.Errorf("Stat(%q) succeeded", rel)
		}
		if err := d.Remove(rel); err == nil {
			t.Errorf("Remove(%q) succeeded", rel)
		}
		if err := d.RemoveAll(rel); err == nil {
			t.Errorf("RemoveAll(%q) succeeded", rel)
		}
		if _, _, err := d.Hash(rel); err == nil {
			t.Errorf("Hash(%q) succeeded", rel)
		}
	}
	if err := d.RemoveAll("a/.."); err == nil {
		t.Error("RemoveAll of the root succeeded")
	}
}

// TestSymlinkEscape plants symlinks to a directory outside the landing
// tree where a server-chosen name would go.
func TestSymlinkEscape(t *testing.T) {
	d, path := openTestDir(t, 0o640, 0o750)
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(outside, filepath.Join(path, "evil")))
	must(os.Symlink(victim, filepath.Join(path, "T.csv.partial")))
	must(os.Symlink(victim, filepath.Join(path, "U.csv")))
	must(os.Symlink("../../"+filepath.Base(outside), filepath.Join(path, "rel")))

	// Through a directory link: refused.
	for _, rel := range []string{"evil/x.csv", "evil/sub/x.csv", "rel/x.csv"} {
		if p, err := d.Create(rel); err == nil {
			p.Abort()
			t.Errorf("Create(%q) through a symlink out of the root succeeded", rel)
		}
	}
	for _, rel := range []string{"evil/victim", "rel/victim", "U.csv"} {
		if f, err := d.Open(rel); err == nil {
			f.Close()
			t.Errorf("Open(%q) read outside the root", rel)
		}
		if _, _, err := d.Hash(rel); err == nil {
			t.Errorf("Hash(%q) read outside the root", rel)
		}
	}
	// A link planted as the partial is replaced, not written through.
	landFile(t, d, "T.csv", "landed")
	// A link planted as the final name is replaced by the rename.
	landFile(t, d, "U.csv", "landed")
	for _, rel := range []string{"T.csv", "U.csv"} {
		fi, err := os.Lstat(filepath.Join(path, rel))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s is not a regular file: %v %v", rel, fi, err)
		}
	}
	// RemoveAll removes the link, not what it points to.
	must(d.RemoveAll("evil"))
	if b, err := os.ReadFile(victim); err != nil || string(b) != "precious" {
		t.Fatalf("file outside the root changed: %q %v", b, err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Fatalf("files appeared outside the root: %v", entries)
	}
}

func TestHash(t *testing.T) {
	d, _ := openTestDir(t, 0o640, 0o750)
	content := strings.Repeat("0123456789", 100000)
	landFile(t, d, "a/T.csv", content)
	sum, size, err := d.Hash("a/T.csv")
	want := sha256.Sum256([]byte(content))
	if err != nil || sum != hex.EncodeToString(want[:]) || size != int64(len(content)) {
		t.Fatalf("Hash = %s %d %v", sum, size, err)
	}
}

// TestCrash kills a writer before Commit: the final name never appears,
// the partial is found for repair, and the next Create replaces it.
func TestCrash(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "landing")
	err := helperCmd(t, "crash", dir).Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper did not die by SIGKILL: %v", err)
	}
	d, err := OpenDir(dir, 0o640, 0o750)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Stat("b/Admin_Patient.csv"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("final file visible after a crash: %v", err)
	}
	if got, _ := d.Partials(); !slices.Equal(got, []string{"b/Admin_Patient.csv.partial"}) {
		t.Fatalf("Partials = %q", got)
	}
	landFile(t, d, "b/Admin_Patient.csv", "complete\n")
	if b, _ := os.ReadFile(filepath.Join(dir, "b/Admin_Patient.csv")); string(b) != "complete\n" {
		t.Fatalf("landed %q", b)
	}
	if got, _ := d.Partials(); len(got) != 0 {
		t.Fatalf("Partials = %q", got)
	}
}

// TestDiskFull runs out of space in a child process: the error surfaces
// from Write or Commit and neither a final nor a partial file remains.
func TestDiskFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "landing")
	out, err := helperCmd(t, "diskfull", dir).Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	var res diskFullResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	if res.WriteErr == "" && res.CommitErr == "" {
		t.Fatal("writing past the size limit reported no error")
	}
	if res.CommitErr == "" {
		t.Fatal("Commit succeeded after a failed Write")
	}
	if !strings.Contains(res.WriteErr+res.CommitErr, "file too large") {
		t.Errorf("errors do not name the cause: %+v", res)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("left behind: %v %v", entries, err)
	}
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"2026-11-21T02.15.00_1234_5678_Admin_Patient_20261121021500_ABCD.csv.gpg", true},
		{"SRExtract.zip", true},
		{"SRManifest.csv", true},
		{"café.csv", true},
		{"CONSULTATION.csv", true},
		{"COM10.csv", true},
		{"", false},
		{".", false},
		{"..", false},
		{"../etc/passwd", false},
		{"/etc/passwd", false},
		{"a/b", false},
		{`a\b`, false},
		{`..\..\x`, false},
		{"a\x00b", false},
		{"a\nb", false},
		{"a\tb", false},
		{"a\x7fb", false},
		{"a\u0085b", false}, // C1 control (NEL)
		{"bad\xffutf8", false},
		{strings.Repeat("n", 255), true},
		{strings.Repeat("n", 256), false},
		{"-rf", false},
		{".hidden", false},
		{"trailing.", false},
		{"trailing ", false},
		{"CON", false},
		{"con.csv", false},
		{"NUL", false},
		{"nul.txt.gpg", false},
		{"COM1", false},
		{"lpt9.csv", false},
		{"COM¹", false},
		{"AUX .csv", false},
	} {
		err := ValidName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestCommitEarlySyncs lands a file large enough for early syncs
// (Pending.Write): it must land whole, and the syncer must be done by the
// time Commit returns.
func TestCommitEarlySyncs(t *testing.T) {
	d, path := openTestDir(t, 0o640, 0o750)
	p, err := d.Create("big.csv")
	if err != nil {
		t.Fatal(err)
	}
	p.syncEvery = 1 << 20 // syncChunk would write hundreds of MiB
	h := sha256.New()
	chunk := make([]byte, 300<<10) // not a divisor of syncEvery
	for i := 0; i < 3*int(p.syncEvery)/len(chunk); i++ {
		for j := range chunk {
			chunk[j] = byte(i + j)
		}
		h.Write(chunk)
		if _, err := p.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if p.sync == nil {
		t.Fatal("no early sync was started")
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.sync.done:
	default:
		t.Fatal("the syncer still runs after Commit")
	}
	b, err := os.ReadFile(filepath.Join(path, "big.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sha256.Sum256(b), h.Sum(nil); !bytes.Equal(got[:], want) {
		t.Fatal("landed bytes differ")
	}
}

// TestEarlySyncError: a failed early fsync fails Commit (the kernel
// reports a write-back error to one fsync only, which may have been the
// early one) and removes the partial file; Abort stops the syncer too.
func TestEarlySyncError(t *testing.T) {
	d, path := openTestDir(t, 0o640, 0o750)
	errIO := errors.New("input/output error")
	p, err := d.Create("a.csv")
	if err != nil {
		t.Fatal(err)
	}
	p.Write([]byte("a,b\n"))
	p.sync = startSyncer(func() error { return errIO })
	p.sync.kick()
	if err := p.Commit(); !errors.Is(err, errIO) {
		t.Fatalf("Commit: %v, want the early sync's error", err)
	}
	if entries, _ := os.ReadDir(path); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}

	p, err = d.Create("b.csv")
	if err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	p.sync = startSyncer(func() error { <-block; return nil })
	p.sync.kick()
	go close(block)
	if err := p.Abort(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.sync.done:
	default:
		t.Fatal("the syncer still runs after Abort")
	}
}
