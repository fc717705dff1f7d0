package emissim

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/im1dev/im1/providers/emis/emisfile"
)

const testAgreement = "45E7CD20-EE37-41AB-90D6-DC9D4B03D102"

var testTime = time.Date(2026, 11, 21, 2, 15, 0, 0, time.UTC)

// newTestKey makes a curve25519 v4 key: fast, and (no AEAD config) it does
// not advertise SEIPDv2, like the RSA keys suppliers are given.
func newTestKey(t testing.TB, name string) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@example.invalid", &packet.Config{
		Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519, Time: func() time.Time { return testTime.AddDate(0, -1, 0) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var testOrgs = []Org{
	{GUID: "5F1C2A3B-0D4E-4F60-8A7B-9C0D1E2F3A4B", ODS: "A81001", Name: "Densham Surgery"},
	{GUID: "7A8B9C0D-1E2F-4A3B-9C4D-5E6F7A8B9C0D", ODS: "A81002", Name: "Queens Park Medical Centre"},
	{GUID: "8B9C0D1E-2F3A-4B4C-8D5E-6F7A8B9C0D1E", ODS: "B82005", Name: "Mill Lane Practice", Disabled: true},
}

func testSpec(t testing.TB, recipient *openpgp.Entity) BatchSpec {
	return BatchSpec{
		Dir: t.TempDir(), Agreement: testAgreement, Time: testTime, ProcStart: 291, ProcEnd: 293,
		Orgs: testOrgs, Patients: 12, Seed: 42, Recipients: openpgp.EntityList{recipient},
	}
}

// decrypt reads one generated file with the private key, verifying the
// signature when keyring holds the signer.
func decrypt(t *testing.T, path string, keyring openpgp.EntityList) ([]byte, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if b, err := armor.Decode(f); err == nil {
		r = b.Body
	} else if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	md, err := openpgp.ReadMessage(r, keyring, nil, &packet.Config{})
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(md.UnverifiedBody)
	if err != nil {
		return nil, err
	}
	if md.IsSigned && md.SignatureError != nil {
		return nil, md.SignatureError
	}
	return body, nil
}

// integrityFailure: go-crypto reports an MDC failure either as such or, to
// deny SEIPD v1 oracles, as a generic session-key parsing error.
func integrityFailure(err error) bool {
	var dec pgperrors.DecryptWithSessionKeyError
	return errors.Is(err, pgperrors.ErrMDCHashMismatch) || errors.As(err, &dec)
}

func readCSV(t *testing.T, fileType string, body []byte) [][]string {
	t.Helper()
	for i, line := range strings.SplitAfter(string(body), "\r\n") {
		if line != "" && (!strings.HasPrefix(line, `"`) || !strings.HasSuffix(line, "\"\r\n")) {
			t.Fatalf("%s line %d not fully quoted with CRLF: %q", fileType, i+1, line)
		}
	}
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", fileType, err)
	}
	return recs
}

func column(recs [][]string, name string) []string {
	i := slices.Index(recs[0], name)
	if i < 0 {
		return nil
	}
	var out []string
	for _, r := range recs[1:] {
		out = append(out, r[i])
	}
	return out
}

func TestWriteBatch(t *testing.T) {
	key, signer := newTestKey(t, "recipient"), newTestKey(t, "emis")
	spec := testSpec(t, key)
	spec.Signer, spec.Compress = signer, true
	names, err := WriteBatch(spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 20 {
		t.Fatalf("%d files written", len(names))
	}
	ents, _ := os.ReadDir(spec.Dir)
	if len(ents) != 20 {
		t.Errorf("%d entries in dir (temp files left?)", len(ents))
	}
	var parsed []emisfile.Name
	for _, n := range names {
		p, err := emisfile.ParseName(n)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, p)
	}
	batches := emisfile.GroupBatches(parsed)
	if len(batches) != 1 {
		t.Fatalf("%d batches", len(batches))
	}
	if err := batches[0].Check(emisfile.FileTypes(), testAgreement); err != nil {
		t.Fatal(err)
	}
	keyring := openpgp.EntityList{key, signer}
	for _, n := range parsed {
		t.Run(n.FileType(), func(t *testing.T) {
			path := filepath.Join(spec.Dir, n.Raw)
			if st, _ := os.Stat(path); !st.ModTime().Equal(testTime) {
				t.Errorf("mtime %v", st.ModTime())
			}
			body, err := decrypt(t, path, keyring)
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			if err := GenerateTable(&want, spec, n.FileType()); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, want.Bytes()) {
				t.Error("decrypted bytes differ from GenerateTable")
			}
			recs := readCSV(t, n.FileType(), body)
			tab, _ := emisfile.Lookup(n.FileType())
			if v, ok := tab.MatchHeader(recs[0]); !ok || v.Name != emisfile.V54 {
				t.Fatalf("header %v does not match 5.4", recs[0])
			}
			for _, nhs := range column(recs, "NhsNumber") {
				if nhs != "" && !emisfile.ValidNHSNumber(nhs) {
					t.Errorf("invalid NHS number %q", nhs)
				}
			}
			for _, id := range column(recs, "ProcessingId") {
				if v, err := strconv.ParseInt(id, 10, 64); err != nil || v < 291 || v > 293 {
					t.Errorf("ProcessingId %q out of range", id)
				}
			}
			for _, org := range column(recs, "OrganisationGuid") {
				if org == testOrgs[2].GUID && tab.Patient {
					t.Errorf("disabled org has patient rows")
				}
			}
			if tab.Patient && len(recs) < 2 {
				t.Errorf("no rows")
			}
		})
	}
}

func TestWriteBatchPacketShape(t *testing.T) {
	key := newTestKey(t, "recipient")
	spec := testSpec(t, key)
	spec.Tables = []string{emisfile.AdminPatient}
	names, err := WriteBatch(spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 3 {
		t.Fatalf("names %v (organisation files are always added)", names)
	}
	f, err := os.Open(filepath.Join(spec.Dir, names[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := packet.NewReader(f)
	var seen []string
	for {
		p, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		switch p := p.(type) {
		case *packet.EncryptedKey:
			seen = append(seen, "pkesk")
		case *packet.SymmetricallyEncrypted:
			if p.Version != 1 || !p.IntegrityProtected {
				t.Errorf("SEIPD version %d integrity %v, want v1 with MDC", p.Version, p.IntegrityProtected)
			}
			if len(seen) != 1 {
				t.Errorf("packets before data: %v", seen)
			}
			return
		default:
			t.Fatalf("unexpected packet %T", p)
		}
	}
}

func TestGenerateDeterministic(t *testing.T) {
	spec := BatchSpec{Agreement: testAgreement, Time: testTime, ProcStart: 7, ProcEnd: 7, Orgs: testOrgs, Patients: 30, Seed: 9}
	other := spec
	other.Seed = 10
	for _, ft := range emisfile.FileTypes() {
		var a, b, c bytes.Buffer
		for _, x := range []struct {
			buf  *bytes.Buffer
			spec BatchSpec
		}{{&a, spec}, {&b, spec}, {&c, other}} {
			if err := GenerateTable(x.buf, x.spec, ft); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("%s: same seed, different output", ft)
		}
		if tab, _ := emisfile.Lookup(ft); tab.Patient && bytes.Equal(a.Bytes(), c.Bytes()) {
			t.Errorf("%s: seed ignored", ft)
		}
	}
}

// Patient GUIDs referenced by clinical tables exist in Admin_Patient.
func TestGenerateReferences(t *testing.T) {
	spec := BatchSpec{Agreement: testAgreement, Time: testTime, ProcStart: 1, ProcEnd: 1, Orgs: testOrgs[:1], Patients: 40, Seed: 3, Full: true}
	table := func(ft string) [][]string {
		var buf bytes.Buffer
		if err := GenerateTable(&buf, spec, ft); err != nil {
			t.Fatal(err)
		}
		return readCSV(t, ft, buf.Bytes())
	}
	patients := column(table(emisfile.AdminPatient), "PatientGuid")
	if len(patients) != 40 || len(slices.Compact(slices.Sorted(slices.Values(patients)))) != 40 {
		t.Fatalf("patients not 40 distinct GUIDs")
	}
	for _, ft := range []string{"CareRecord_Observation", "Prescribing_IssueRecord", "CareRecord_Consultation"} {
		for _, p := range column(table(ft), "PatientGuid") {
			if !slices.Contains(patients, p) {
				t.Errorf("%s references unknown patient %s", ft, p)
			}
		}
	}
	drugs := column(table("Prescribing_DrugRecord"), "DrugRecordGuid")
	for _, d := range column(table("Prescribing_IssueRecord"), "DrugRecordGuid") {
		if !slices.Contains(drugs, d) {
			t.Errorf("issue references unknown drug record %s", d)
		}
	}
	for _, g := range column(table("CareRecord_Observation"), "ObservationGuid") {
		if !emisfile.IsGUID(g) || strings.ToUpper(g) != g {
			t.Errorf("bad GUID %q", g)
		}
	}
}

func TestGenerateDeletes(t *testing.T) {
	for _, full := range []bool{false, true} {
		spec := BatchSpec{Agreement: testAgreement, Time: testTime, ProcStart: 1, ProcEnd: 1, Orgs: testOrgs[:2], Patients: 200, Seed: 5, Full: full}
		for _, ft := range []string{emisfile.AdminPatient, "CareRecord_Observation", "Appointment_Slot"} {
			var buf bytes.Buffer
			if err := GenerateTable(&buf, spec, ft); err != nil {
				t.Fatal(err)
			}
			recs := readCSV(t, ft, buf.Bytes())
			tab, _ := emisfile.Lookup(ft)
			deletes := 0
			for _, r := range recs[1:] {
				if r[slices.Index(recs[0], "Deleted")] != "true" {
					continue
				}
				deletes++
				for j, v := range r {
					c := recs[0][j]
					keep := slices.Contains(tab.Key, c) || c == "PatientGuid" || c == "OrganisationGuid" || c == "Deleted" || c == "ProcessingId"
					if keep == (v == "") {
						t.Errorf("%s delete row: %s=%q", ft, c, v)
					}
				}
			}
			if full && deletes > 0 || !full && deletes == 0 {
				t.Errorf("%s full=%v: %d delete rows", ft, full, deletes)
			}
		}
	}
}

func TestGenerateOlderVersion(t *testing.T) {
	spec := BatchSpec{Agreement: testAgreement, Time: testTime, ProcStart: 1, ProcEnd: 1, Orgs: testOrgs[:1], Patients: 20, Seed: 1, Version: emisfile.V50, Full: true}
	for _, ft := range []string{emisfile.AdminPatient, "Prescribing_DrugRecord", "CareRecord_Consultation"} {
		var buf bytes.Buffer
		if err := GenerateTable(&buf, spec, ft); err != nil {
			t.Fatal(err)
		}
		recs := readCSV(t, ft, buf.Bytes())
		tab, _ := emisfile.Lookup(ft)
		if v, _ := tab.MatchHeader(recs[0]); v.Name != emisfile.V50 && v.Name != emisfile.V51 {
			t.Errorf("%s header detected as %q", ft, v.Name)
		}
		if ft == "Prescribing_DrugRecord" {
			for _, c := range column(recs, "ClinicanUserInRoleGuid") {
				if !emisfile.IsGUID(c) {
					t.Errorf("misspelt column not filled: %q", c)
				}
			}
		}
	}
	spec.Version = "6.0"
	if err := GenerateTable(io.Discard, spec, emisfile.AdminPatient); err == nil {
		t.Error("unknown version accepted")
	}
}

func TestWriteBatchFaults(t *testing.T) {
	key, wrong := newTestKey(t, "recipient"), newTestKey(t, "someone-else")
	organisations := func(t *testing.T, dir string, names []string) ([]emisfile.SharingOrg, []emisfile.Org) {
		var shares []emisfile.SharingOrg
		var orgs []emisfile.Org
		for _, n := range names {
			p, _ := emisfile.ParseName(n)
			switch p.FileType() {
			case emisfile.SharingOrganisation, emisfile.AdminOrganisation:
				body, err := decrypt(t, filepath.Join(dir, n), openpgp.EntityList{key})
				if err != nil {
					t.Fatal(err)
				}
				if p.FileType() == emisfile.SharingOrganisation {
					shares, err = emisfile.ParseSharingOrganisations(bytes.NewReader(body))
				} else {
					orgs, err = emisfile.ParseOrganisations(bytes.NewReader(body))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		return shares, orgs
	}
	fileOf := func(names []string, ft string) string {
		for _, n := range names {
			if p, err := emisfile.ParseName(n); err == nil && p.FileType() == ft {
				return n
			}
		}
		return ""
	}
	tests := []struct {
		name   string
		faults Faults
		armor  bool
		check  func(t *testing.T, dir string, names []string)
	}{
		{"tampered ciphertext fails MDC", Faults{TamperFile: "CareRecord_Observation"}, false, func(t *testing.T, dir string, names []string) {
			_, err := decrypt(t, filepath.Join(dir, fileOf(names, "CareRecord_Observation")), openpgp.EntityList{key})
			if !integrityFailure(err) {
				t.Errorf("decrypt error %v, want MDC hash mismatch", err)
			}
			if _, err := decrypt(t, filepath.Join(dir, fileOf(names, emisfile.AdminPatient)), openpgp.EntityList{key}); err != nil {
				t.Errorf("untampered file: %v", err)
			}
		}},
		{"tampered armoured ciphertext fails MDC", Faults{TamperFile: emisfile.AdminPatient}, true, func(t *testing.T, dir string, names []string) {
			path := filepath.Join(dir, fileOf(names, emisfile.AdminPatient))
			if b, _ := os.ReadFile(path); !bytes.HasPrefix(b, []byte("-----BEGIN PGP MESSAGE-----")) {
				t.Errorf("not armoured: %.40q", b)
			}
			if _, err := decrypt(t, path, openpgp.EntityList{key}); !integrityFailure(err) {
				t.Errorf("decrypt error %v, want MDC hash mismatch", err)
			}
		}},
		{"wrong key", Faults{WrongKey: true}, false, func(t *testing.T, dir string, names []string) {
			path := filepath.Join(dir, fileOf(names, emisfile.AdminPatient))
			if _, err := decrypt(t, path, openpgp.EntityList{key}); !errors.Is(err, pgperrors.ErrKeyIncorrect) {
				t.Errorf("right key: error %v, want key incorrect", err)
			}
			if _, err := decrypt(t, path, openpgp.EntityList{wrong}); err != nil {
				t.Errorf("wrong key cannot decrypt its own file: %v", err)
			}
		}},
		{"junk files", Faults{Junk: []string{".bash_history", "notes.txt", "291_Admin_Patient.csv.gpg"}}, false, func(t *testing.T, dir string, names []string) {
			for _, j := range []string{".bash_history", "notes.txt", "291_Admin_Patient.csv.gpg"} {
				if !slices.Contains(names, j) {
					t.Errorf("%s not reported", j)
				}
				if _, err := os.Stat(filepath.Join(dir, j)); err != nil {
					t.Error(err)
				}
				if _, err := emisfile.ParseName(j); err == nil {
					t.Errorf("junk %s parses as an EMIS name", j)
				}
			}
		}},
		{"ODS change", Faults{ODSChange: map[string]string{testOrgs[1].GUID: "Y02999"}}, false, func(t *testing.T, dir string, names []string) {
			_, orgs := organisations(t, dir, names)
			if len(orgs) != 3 || orgs[0].ODSCode != "A81001" || orgs[1].ODSCode != "Y02999" {
				t.Errorf("orgs %+v", orgs)
			}
		}},
		{"disabled org flagged", Faults{}, false, func(t *testing.T, dir string, names []string) {
			shares, _ := organisations(t, dir, names)
			if len(shares) != 3 || shares[0].Disabled || !shares[2].Disabled || !shares[2].IsActivated {
				t.Errorf("sharing orgs %+v", shares)
			}
		}},
		{"duplicate SessionUser rows", Faults{DuplicateRows: true}, false, func(t *testing.T, dir string, names []string) {
			body, err := decrypt(t, filepath.Join(dir, fileOf(names, "Appointment_SessionUser")), openpgp.EntityList{key})
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(string(body), "\r\n")
			if len(slices.Compact(slices.Clone(lines))) == len(lines) {
				t.Error("no adjacent duplicate rows")
			}
		}},
		{"omitted file", Faults{OmitFile: "CareRecord_Problem"}, false, func(t *testing.T, dir string, names []string) {
			var parsed []emisfile.Name
			for _, n := range names {
				p, _ := emisfile.ParseName(n)
				parsed = append(parsed, p)
			}
			err := emisfile.GroupBatches(parsed)[0].Check(emisfile.FileTypes(), testAgreement)
			if err == nil || !strings.Contains(err.Error(), "Could not find file of type CareRecord_Problem") {
				t.Errorf("Check: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := testSpec(t, key)
			spec.WrongKeyRecipient = openpgp.EntityList{wrong}
			spec.Faults, spec.Armor = tt.faults, tt.armor
			names, err := WriteBatch(spec)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, spec.Dir, names)
		})
	}
}

func TestWriteBatchRejects(t *testing.T) {
	key := newTestKey(t, "recipient")
	for name, mod := range map[string]func(*BatchSpec){
		"no recipients":       func(s *BatchSpec) { s.Recipients = nil },
		"wrong key, no key":   func(s *BatchSpec) { s.Faults.WrongKey = true },
		"bad agreement":       func(s *BatchSpec) { s.Agreement = "not-a-guid" },
		"bad range":           func(s *BatchSpec) { s.ProcStart, s.ProcEnd = 5, 4 },
		"junk escapes dir":    func(s *BatchSpec) { s.Faults.Junk = []string{"../x"} },
		"junk in subdir":      func(s *BatchSpec) { s.Faults.Junk = []string{"a/b"} },
		"unknown table":       func(s *BatchSpec) { s.Tables = []string{"Admin_Nothing"} },
		"bad org guid":        func(s *BatchSpec) { s.Orgs = []Org{{GUID: "x"}} },
		"no time":             func(s *BatchSpec) { s.Time = time.Time{} },
		"unknown EMIS format": func(s *BatchSpec) { s.Version = "4.9" },
	} {
		t.Run(name, func(t *testing.T) {
			spec := testSpec(t, key)
			mod(&spec)
			if _, err := WriteBatch(spec); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// A supplier's reader is GnuPG-compatible: real gpg must decrypt our output.
func TestGPGDecrypts(t *testing.T) {
	gpg, err := exec.LookPath("/usr/bin/gpg")
	if err != nil {
		t.Skip("no /usr/bin/gpg")
	}
	key := newTestKey(t, "recipient")
	spec := testSpec(t, key)
	signer := newTestKey(t, "emis")
	spec.Tables, spec.Compress, spec.Signer = []string{"CareRecord_Observation"}, true, signer
	names, err := WriteBatch(spec)
	if err != nil {
		t.Fatal(err)
	}
	// gpg-agent's socket path must stay short, so not t.TempDir().
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GNUPGHOME="+home)
	t.Cleanup(func() {
		kill := exec.Command("gpgconf", "--kill", "all")
		kill.Env = env
		_ = kill.Run()
		os.RemoveAll(home)
	})
	var priv bytes.Buffer
	if err := key.SerializePrivate(&priv, nil); err != nil {
		t.Fatal(err)
	}
	run := func(stdin io.Reader, args ...string) []byte {
		cmd := exec.Command(gpg, append([]string{"--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		cmd.Env, cmd.Stdin = env, stdin
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, stderr.String())
		}
		return out.Bytes()
	}
	run(&priv, "--import")
	var pub bytes.Buffer
	if err := signer.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	run(&pub, "--import")
	for _, n := range names {
		p, _ := emisfile.ParseName(n)
		got := run(nil, "--decrypt", filepath.Join(spec.Dir, n))
		var want bytes.Buffer
		if err := GenerateTable(&want, spec, p.FileType()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s: gpg plaintext differs (%d vs %d bytes)", n, len(got), want.Len())
		}
	}
}

func BenchmarkGenerateTable(b *testing.B) {
	spec := BatchSpec{Agreement: testAgreement, Time: testTime, ProcStart: 291, ProcEnd: 300, Orgs: testOrgs[:2], Patients: 5000, Seed: 1}
	var cw countingWriter
	b.ReportAllocs()
	for b.Loop() {
		if err := GenerateTable(&cw, spec, "CareRecord_Observation"); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(cw.n / int64(b.N))
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
