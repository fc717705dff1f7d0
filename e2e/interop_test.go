package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/im1dev/im1/providers/emis/emisfile"
	"github.com/im1dev/im1/providers/emis/sshdtest"
	"github.com/im1dev/im1/state"
)

// The real thing on the supplier's side: OpenSSH's sshd (internal-sftp)
// serves the site, and real gpg encrypts the hand-written golden EMIS files
// to the public key im1 handed off. im1 fetches, decrypts, validates and
// lands them with the same code that lands the simulator's output, and
// the landed bytes are the golden bytes.
func TestEMISRealSSHDAndGPGWithGoldenFiles(t *testing.T) {
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg not installed")
	}
	w := &world{t: t, dir: t.TempDir(), now: at("2026-11-21", 9, 0)}
	w.siteDir = filepath.Join(w.dir, "site")
	os.MkdirAll(w.siteDir, 0o750)
	srv := sshdtest.Start(t, w.siteDir)
	w.port, w.user, w.hostKey, w.keyFile, w.remoteDir = srv.Port, srv.User, srv.HostKeyLine, srv.ClientKeyFile, srv.Dir
	w.siteExtra = "\n  sftp_request_size = 65536" // OpenSSH serves 64 KiB reads
	var all []string
	for _, ft := range emisfile.FileTypes() {
		if ft != emisfile.SharingOrganisation && ft != emisfile.AdminOrganisation {
			all = append(all, `"`+ft+`"`)
		}
	}
	w.tables = "[" + strings.Join(all, ", ") + "]"
	w.mustApply()

	gnupg := filepath.Join(t.TempDir(), "gnupg")
	os.MkdirAll(gnupg, 0o700)
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", gnupg, "--kill", "all").Run() })
	gpg := func(args ...string) {
		t.Helper()
		cmd := exec.Command("gpg", append([]string{"--homedir", gnupg, "--batch", "--yes", "--trust-model", "always"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, out)
		}
	}
	ascs, _ := filepath.Glob(filepath.Join(w.dir, "handoff", "emis", "central", "public_key-*.asc"))
	if len(ascs) != 1 {
		t.Fatalf("public key handoff: %v", ascs)
	}
	gpg("--import", ascs[0])
	fpr := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(ascs[0]), "public_key-central-"), ".asc")

	golden := filepath.Join("..", "providers", "emis", "emisfile", "testdata", "golden")
	entries, err := os.ReadDir(golden)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for i, e := range entries {
		n, err := emisfile.ParseName(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(golden, e.Name()))
		want[n.FileType()] = b
		args := []string{"--recipient", fpr, "--output", filepath.Join(w.siteDir, e.Name()+".gpg")}
		switch i % 3 { // the variants a supplier might send
		case 0:
			args = append(args, "--compress-algo", "zlib")
		case 1:
			args = append(args, "--compress-algo", "none")
		case 2:
			args = append(args, "--armor")
		}
		gpg(append(args, "--encrypt", filepath.Join(golden, e.Name()))...)
	}
	if testing.Verbose() {
		t.Logf("plan: %+v", instances(w.plan(), "extract.core"))
	}
	w.mustApply()
	ds := w.deliveries()
	if len(ds) != 1 || ds[0].Status != state.DeliveryLanded || ds[0].SeqFrom != "291" {
		t.Fatalf("deliveries %+v", ds)
	}
	for ft, b := range want {
		got, err := os.ReadFile(filepath.Join(w.dir, "landing", ds[0].Path, ft+".csv"))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s: landed bytes differ from the golden file (%v)", ft, err)
		}
	}
	p := w.plan()
	if !p.Empty() {
		t.Errorf("plan not empty after landing")
	}
	// The golden agreement marks A81002 disabled: that is drift to report.
	if !strings.Contains(driftText(p), "organisation A81002 is disabled") {
		t.Errorf("drift: %s", driftText(p))
	}
}

// Names a server lists are never trusted as paths: against real sshd, a
// site holding files named with newlines, backslashes, reserved names,
// over-long names and a symlink to outside gets them reported as unknown
// files, never fetched, and nothing is written outside the landing root.
func TestMaliciousServerNames(t *testing.T) {
	w := &world{t: t, dir: t.TempDir(), now: at("2026-11-21", 9, 0)}
	w.siteDir = filepath.Join(w.dir, "site")
	os.MkdirAll(w.siteDir, 0o750)
	srv := sshdtest.Start(t, w.siteDir)
	w.port, w.user, w.hostKey, w.keyFile, w.remoteDir = srv.Port, srv.User, srv.HostKeyLine, srv.ClientKeyFile, srv.Dir
	w.tables = `["Admin_Patient"]`
	w.mustApply()
	evil := []string{
		"evil\nname.csv.gpg",
		`..\..\outside.csv.gpg`,
		"CON",
		"-rf.csv.gpg",
		strings.Repeat("A", 240) + ".csv.gpg", // near NAME_MAX
		"1_Admin_Patient_20261121021500_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.gpg\x7f",
	}
	for _, n := range evil {
		if err := os.WriteFile(filepath.Join(w.siteDir, n), []byte("not a batch"), 0o640); err != nil {
			t.Fatalf("%q: %v", n, err)
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(w.siteDir, "1_Admin_Patient_20261121021500_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.gpg")); err != nil {
		t.Fatal(err)
	}
	p := w.plan()
	if !strings.Contains(driftText(p), "unknown file(s) on the site") {
		t.Errorf("drift: %s", driftText(p))
	}
	w.mustApply()
	if files := w.landedFiles(); len(files) != 0 {
		t.Errorf("landed from a hostile site: %v", files)
	}
	arch := filepath.Join(w.dir, "archive")
	filepath.WalkDir(arch, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("archived from a hostile site: %s", p)
		}
		return nil
	})
	for _, p := range []string{filepath.Join(w.dir, "outside.csv"), filepath.Join(filepath.Dir(w.dir), "outside.csv")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("wrote outside the landing root: %s", p)
		}
	}
}
