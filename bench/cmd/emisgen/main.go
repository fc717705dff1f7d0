// Command emisgen writes one plaintext EMIS batch (CSV files named as EMIS
// names them, before encryption) with the project's own generator, sized by
// patients per organisation. bench/fetch.sh encrypts its output with real gpg.
//
//	emisgen -dir DIR -size MiB [-tables A,B] [-time 20261121021500]
//
// With -size the patient count is found by generating a probe batch to
// io.Discard and scaling: the generator is deterministic and its output grows
// linearly with patients, so one probe lands within a few per cent.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/im1dev/im1/providers/emis/emisfile"
	"github.com/im1dev/im1/providers/emis/emissim"
)

// The agreement and organisations the benchmark configuration names.
const agreement = "45E7CD20-EE37-41AB-90D6-DC9D4B03D102"

var orgs = []emissim.Org{
	{GUID: "0B6E2C4A-1111-4A11-8A11-000000000001", ODS: "A81001", Name: "Densham Surgery"},
	{GUID: "0B6E2C4A-2222-4A22-8A22-000000000002", ODS: "A81002", Name: "Queens Park Medical Centre"},
}

const probePatients = 50

func main() {
	dir := flag.String("dir", "", "output directory (created)")
	size := flag.Float64("size", 64, "target total plaintext size in MiB (ignored if -patients is set)")
	patients := flag.Int("patients", 0, "patients per organisation (overrides -size)")
	tables := flag.String("tables", "", "comma-separated file types (default: all 20)")
	stamp := flag.String("time", "20261121021500", "extract timestamp, yyyyMMddHHmmss UTC")
	seed := flag.Int64("seed", 1, "generator seed")
	flag.Parse()
	if err := run(*dir, *size, *patients, *tables, *stamp, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "emisgen:", err)
		os.Exit(1)
	}
}

func run(dir string, sizeMiB float64, patients int, tables, stamp string, seed int64) error {
	if dir == "" {
		return errors.New("-dir is required")
	}
	t, err := time.Parse("20060102150405", stamp)
	if err != nil {
		return fmt.Errorf("-time: %w", err)
	}
	spec := emissim.BatchSpec{Agreement: agreement, Time: t, ProcStart: 1, ProcEnd: 1,
		Orgs: orgs, Seed: seed, Full: true}
	types := emisfile.FileTypes()
	if tables != "" {
		// The two organisation files are part of every batch.
		types = append(strings.Split(tables, ","), emisfile.SharingOrganisation, emisfile.AdminOrganisation)
		slices.Sort(types)
		types = slices.Compact(types)
	}
	if patients <= 0 {
		if patients, err = patientsFor(spec, types, int64(sizeMiB*(1<<20))); err != nil {
			return err
		}
	}
	spec.Patients = patients
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var total int64
	for _, ft := range types {
		n, err := writeFile(dir, spec, ft)
		if err != nil {
			return err
		}
		total += n
	}
	fmt.Printf("patients=%d files=%d bytes=%d\n", patients, len(types), total)
	return nil
}

// patientsFor scales a probe batch's size to the target.
func patientsFor(spec emissim.BatchSpec, types []string, target int64) (int, error) {
	spec.Patients = probePatients
	var c countWriter
	for _, ft := range types {
		if err := emissim.GenerateTable(&c, spec, ft); err != nil {
			return 0, err
		}
	}
	p := int(float64(target) / float64(c) * probePatients)
	return max(p, 1), nil
}

func writeFile(dir string, spec emissim.BatchSpec, fileType string) (int64, error) {
	schema, table, _ := strings.Cut(fileType, "_")
	name := emisfile.Name{ProcStart: spec.ProcStart, ProcEnd: spec.ProcEnd, Schema: schema, Table: table,
		Time: spec.Time, Agreement: spec.Agreement, Ext: ".csv"}
	f, err := os.Create(filepath.Join(dir, name.String()))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	c := countWriter(0)
	bw := bufio.NewWriterSize(io.MultiWriter(f, &c), 1<<20)
	if err := emissim.GenerateTable(bw, spec, fileType); err != nil {
		return 0, fmt.Errorf("%s: %w", fileType, err)
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	return int64(c), f.Close()
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
