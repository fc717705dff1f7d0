package emissim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/im1dev/im1/providers/emis/emisfile"
)

// Org is one organisation in the simulated sharing agreement.
type Org struct {
	GUID, ODS, Name string
	// Disabled, NotActivated and Deleted are written to
	// Agreements_SharingOrganisation. Any of them also empties the org's
	// patient-level rows, as EMIS has done for disabled practices since 2019.
	Disabled, NotActivated, Deleted bool
}

// Faults are the data-level fault knobs; transport knobs live in the server.
type Faults struct {
	TamperFile    string            // file type whose ciphertext gets a flipped byte after encryption
	WrongKey      bool              // encrypt to BatchSpec.WrongKeyRecipient instead
	Junk          []string          // extra junk file names to drop in the dir (bare names)
	ODSChange     map[string]string // org GUID -> new ODS code written in Admin_Organisation
	DuplicateRows bool              // duplicate a few Appointment_SessionUser rows
	OmitFile      string            // leave one file type out (incomplete batch)
}

// BatchSpec describes one simulated extract run.
type BatchSpec struct {
	Dir                string
	Agreement          string // sharing agreement GUID
	Time               time.Time
	ProcStart, ProcEnd int64
	Orgs               []Org
	Tables             []string // default all 20; the two organisation files are always added
	Patients           int      // per org
	Seed               int64
	Version            string // EMIS format version, "5.4" by default

	Recipients        openpgp.EntityList
	WrongKeyRecipient openpgp.EntityList
	Signer            *openpgp.Entity
	Armor, Compress   bool

	Full   bool // a full extract has no delete rows
	Faults Faults
}

// Ext is the extension generated files carry. Armoured files keep it too:
// a feed has one configured extension and readers detect armour by content.
const Ext = ".csv.gpg"

// WriteBatch writes one batch of encrypted files into spec.Dir, each under a
// temporary dot-name first and renamed into place when complete, and returns
// the names written (junk files included), sorted. Files get spec.Time as
// their modification time.
func WriteBatch(spec BatchSpec) ([]string, error) {
	spec, err := spec.normalise()
	if err != nil {
		return nil, err
	}
	to := spec.Recipients
	if spec.Faults.WrongKey {
		to = spec.WrongKeyRecipient
	}
	if len(to) == 0 {
		return nil, errors.New("emissim: no recipient key (WrongKey needs WrongKeyRecipient)")
	}
	var written []string
	for _, ft := range spec.Tables {
		if ft == spec.Faults.OmitFile {
			continue
		}
		n := spec.name(ft)
		if err := spec.writeEncrypted(n, ft, to); err != nil {
			return written, fmt.Errorf("emissim: %s: %w", ft, err)
		}
		written = append(written, n.String())
	}
	for i, j := range spec.Faults.Junk {
		if err := spec.writeJunk(j, i); err != nil {
			return written, fmt.Errorf("emissim: junk %q: %w", j, err)
		}
		written = append(written, j)
	}
	slices.Sort(written)
	return written, nil
}

func (spec BatchSpec) normalise() (BatchSpec, error) {
	if spec.Dir == "" {
		return spec, errors.New("emissim: no Dir")
	}
	if !emisfile.IsGUID(spec.Agreement) {
		return spec, fmt.Errorf("emissim: sharing agreement %q is not a GUID", spec.Agreement)
	}
	spec.Agreement = strings.ToUpper(spec.Agreement)
	if spec.Time.IsZero() {
		return spec, errors.New("emissim: no batch Time")
	}
	spec.Time = spec.Time.UTC().Truncate(time.Second)
	if spec.ProcStart < 0 || spec.ProcEnd < spec.ProcStart {
		return spec, fmt.Errorf("emissim: bad processing id range %d-%d", spec.ProcStart, spec.ProcEnd)
	}
	if spec.Version == "" {
		spec.Version = emisfile.V54
	}
	if !slices.Contains(emisfile.Versions(), spec.Version) {
		return spec, fmt.Errorf("emissim: unknown EMIS version %q", spec.Version)
	}
	if len(spec.Tables) == 0 {
		spec.Tables = emisfile.FileTypes()
	} else {
		spec.Tables = append([]string{emisfile.SharingOrganisation, emisfile.AdminOrganisation}, spec.Tables...)
		slices.Sort(spec.Tables)
		spec.Tables = slices.Compact(spec.Tables)
	}
	for _, ft := range spec.Tables {
		if _, ok := emisfile.Lookup(ft); !ok {
			return spec, fmt.Errorf("emissim: unknown EMIS file type %q", ft)
		}
	}
	for i, o := range spec.Orgs {
		if !emisfile.IsGUID(o.GUID) {
			return spec, fmt.Errorf("emissim: org %d GUID %q is not a GUID", i, o.GUID)
		}
	}
	for _, j := range spec.Faults.Junk {
		// Junk names are written into Dir: they must be bare names in it.
		if !filepath.IsLocal(j) || strings.ContainsAny(j, `/\`) {
			return spec, fmt.Errorf("emissim: junk name %q is not a bare file name", j)
		}
	}
	return spec, nil
}

func (spec BatchSpec) name(fileType string) emisfile.Name {
	schema, table, _ := strings.Cut(fileType, "_")
	return emisfile.Name{ProcStart: spec.ProcStart, ProcEnd: spec.ProcEnd, Schema: schema, Table: table,
		Time: spec.Time, Agreement: spec.Agreement, Ext: Ext}
}

// pgpConfig pins what EMIS-compatible readers accept: AES-256, zlib when
// compressing, and (with recipients that do not advertise SEIPDv2, which
// keys for supplier compatibility do not) SEIPD v1 with an MDC.
func (spec BatchSpec) pgpConfig() *packet.Config {
	c := &packet.Config{DefaultCipher: packet.CipherAES256, DefaultCompressionAlgo: packet.CompressionNone}
	if t := spec.Time; t.After(time.Now()) {
		// A batch "from the future" (a test clock ahead of the real one) is
		// encrypted at its own time, so keys made on that clock are valid.
		c.Time = func() time.Time { return t }
	}
	if spec.Compress {
		c.DefaultCompressionAlgo = packet.CompressionZLIB
		c.CompressionConfig = &packet.CompressionConfig{Level: packet.DefaultCompression}
	}
	return c
}

func (spec BatchSpec) writeEncrypted(n emisfile.Name, fileType string, to openpgp.EntityList) (err error) {
	final := filepath.Join(spec.Dir, n.String())
	tmp := filepath.Join(spec.Dir, "."+n.String()+".tmp")
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var signers []*openpgp.Entity
	if spec.Signer != nil {
		signers = []*openpgp.Entity{spec.Signer}
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	hints := &openpgp.FileHints{FileName: n.Decrypted(), ModTime: spec.Time}
	pt, err := openpgp.Encrypt(bw, to, nil, signers, hints, spec.pgpConfig())
	if err != nil {
		return err
	}
	if err := GenerateTable(pt, spec, fileType); err != nil {
		return err
	}
	if err := pt.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if fileType == spec.Faults.TamperFile {
		// The last bytes of a SEIPD v1 packet are the encrypted MDC, so a
		// flip there passes every packet parser and fails only the
		// integrity check at EOF, which is the case readers must catch.
		if err := flipByte(f, 5); err != nil {
			return err
		}
	}
	if spec.Armor {
		if err := armorInPlace(f); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chtimes(tmp, spec.Time, spec.Time); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// flipByte inverts the byte fromEnd bytes before the end of f.
func flipByte(f *os.File, fromEnd int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < fromEnd {
		return errors.New("ciphertext too short to tamper with")
	}
	b := make([]byte, 1)
	off := st.Size() - fromEnd
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	return err
}

// armorInPlace rewrites the binary message in f as an ASCII-armoured one,
// through a second temporary file so memory stays constant.
func armorInPlace(f *os.File) error {
	bin, err := os.CreateTemp(filepath.Dir(f.Name()), ".armor-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(bin.Name())
	defer bin.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(bin, f); err != nil {
		return err
	}
	if _, err := bin.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	aw, err := armor.Encode(bw, "PGP MESSAGE", nil)
	if err != nil {
		return err
	}
	if _, err := io.Copy(aw, bin); err != nil {
		return err
	}
	if err := aw.Close(); err != nil {
		return err
	}
	if _, err := bw.WriteString("\n"); err != nil {
		return err
	}
	return bw.Flush()
}

// writeJunk drops a file of the kind found lying around EMIS SFTP
// directories: shell leftovers, notes, misnamed extracts.
func (spec BatchSpec) writeJunk(name string, i int) error {
	p := filepath.Join(spec.Dir, name)
	content := fmt.Sprintf("junk %d written by the EMIS simulator at %s\n", i, spec.Time.Format(time.RFC3339))
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Chtimes(p, spec.Time, spec.Time)
}
