// Command landbench runs im1's single-file decrypt-and-land path on its own,
// so bench/decrypt.sh can time it against `gpg --decrypt -o FILE` and read
// its peak memory. It has two modes:
//
//	landbench gen  -size MiB [-table T] [-seed N]     > plain.csv
//	landbench land -key sec.asc -pass-env VAR -in FILE|- -out DIR [-table T]
//
// gen writes one plaintext EMIS table (emissim.GenerateTable) of about the
// requested size to stdout; it streams, so a 1 GiB table can be piped
// through gpg into land without touching the disk.
//
// land does what providers/emis (run.verify) does for one archived file:
// pgpkey.Decrypt -> landing.Check (with the table's CSVSpec) -> a
// landing.Pending file -> Commit. It prints one line of key=value results,
// including the process's peak RSS (VmHWM) at the end.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/im1dev/im1/providers/emis/emisfile"
	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/landing"
	"github.com/im1dev/im1/providers/pgpkey"
)

const defaultTable = "CareRecord_Observation"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: landbench gen|land [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "land":
		err = land(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q (gen or land)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "landbench:", err)
		os.Exit(1)
	}
}

func batchSpec(seed int64) emissim.BatchSpec {
	return emissim.BatchSpec{
		Agreement: "45E7CD20-EE37-41AB-90D6-DC9D4B03D102",
		Time:      time.Date(2026, 11, 21, 2, 15, 0, 0, time.UTC),
		ProcStart: 1, ProcEnd: 1, Seed: seed, Full: true,
		Orgs: []emissim.Org{
			{GUID: "0B6E2C4A-1111-4A11-8A11-000000000001", ODS: "A81001", Name: "Densham Surgery"},
			{GUID: "0B6E2C4A-2222-4A22-8A22-000000000002", ODS: "A81002", Name: "Queens Park Medical Centre"},
		},
	}
}

func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	size := fs.Float64("size", 256, "target plaintext size in MiB")
	table := fs.String("table", defaultTable, "EMIS file type")
	seed := fs.Int64("seed", 1, "generator seed")
	fs.Parse(args)
	spec := batchSpec(*seed)
	// The generator's output grows linearly with patients: size a probe.
	const probe = 50
	spec.Patients = probe
	var c countWriter
	if err := emissim.GenerateTable(&c, spec, *table); err != nil {
		return err
	}
	spec.Patients = max(1, int(*size*(1<<20)/float64(c)*probe))
	bw := bufio.NewWriterSize(os.Stdout, 1<<20)
	if err := emissim.GenerateTable(bw, spec, *table); err != nil {
		return err
	}
	return bw.Flush()
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

func land(args []string) error {
	fs := flag.NewFlagSet("land", flag.ExitOnError)
	keyFile := fs.String("key", "", "armoured, passphrase-protected secret key")
	passEnv := fs.String("pass-env", "IM1_KEY_PASSPHRASE", "environment variable holding the passphrase")
	in := fs.String("in", "-", "encrypted input file, - for stdin")
	out := fs.String("out", "", "landing directory (created)")
	table := fs.String("table", defaultTable, "EMIS file type (selects the CSV spec)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the timed part to this file")
	fs.Parse(args)
	if *keyFile == "" || *out == "" {
		return errors.New("land needs -key and -out")
	}
	armored, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	key, err := pgpkey.UnlockForDecryption(armored, []byte(os.Getenv(*passEnv)))
	if err != nil {
		return err
	}
	spec, err := csvSpec(*table)
	if err != nil {
		return err
	}
	var r io.Reader = os.Stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	dir, err := landing.OpenDir(*out, 0o644, 0o755)
	if err != nil {
		return err
	}
	defer dir.Close()

	// Timed from here: key unlocking is a once-per-run cost in im1 too.
	if *cpuprofile != "" {
		pf, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	pt, err := pgpkey.Decrypt(r, pgpkey.DecryptOptions{Keys: openpgp.EntityList{key}})
	if err != nil {
		return err
	}
	pend, err := dir.Create(*table + ".csv")
	if err != nil {
		return err
	}
	st, err := landing.Check(pt, pend, spec)
	if err != nil {
		pend.Abort()
		return err
	}
	checked := time.Now()
	if err := pend.Commit(); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Printf("bytes=%d rows=%d sha256=%s seconds=%.3f commit_seconds=%.3f vmhwm_kib=%d\n",
		st.Bytes, st.Rows, st.SHA256, el.Seconds(), time.Since(checked).Seconds(), vmHWM())
	return nil
}

// csvSpec builds the spec exactly as providers/emis run.verify does.
func csvSpec(fileType string) (landing.CSVSpec, error) {
	t, ok := emisfile.Lookup(fileType)
	if !ok {
		return landing.CSVSpec{}, fmt.Errorf("unknown EMIS file type %s", fileType)
	}
	spec := landing.CSVSpec{Delimiter: ',', Quote: '"', Encoding: landing.UTF8, NHSColumn: t.NHSColumn, OrgColumn: t.OrgColumn}
	if t.HasDeleted {
		spec.DeletedColumn, spec.DeletedValue = "Deleted", "true"
	}
	for _, v := range t.Versions {
		spec.Versions = append(spec.Versions, landing.HeaderVersion{Name: v.Name, Columns: v.Columns})
	}
	return spec, nil
}

// vmHWM is the peak resident set size in KiB (Linux), or -1.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var n int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &n)
			return n
		}
	}
	return -1
}
