package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/im1dev/im1/providers/landing"
	"github.com/im1dev/im1/reconcile"
	"github.com/im1dev/im1/state"
)

// DoctorReport is `im1 doctor -json`.
type DoctorReport struct {
	FormatVersion string   `json:"format_version"`
	Integrity     string   `json:"integrity"`
	Checked       int      `json:"files_checked"`
	Landed        int      `json:"files_landed"`
	Mismatched    []string `json:"mismatched"`
	Missing       []string `json:"missing"`
	Orphans       []string `json:"orphans"`
	Partials      []string `json:"partials"`
	Healthy       bool     `json:"healthy"`
}

func (c *cli) doctorCommand() *ffcli.Command {
	fs := c.newFlags("doctor")
	all := fs.Bool("all", false, "re-hash every landed file (default: a sample)")
	sample := fs.Int("sample", 200, "how many landed files to re-hash without -all")
	asJSON := fs.Bool("json", false, "JSON report")
	return &ffcli.Command{
		Name: "doctor", ShortUsage: "im1 doctor [-all] [-json]", FlagSet: fs,
		ShortHelp: "Check state and landing: SQLite integrity, landed files against their recorded hashes, orphans, .partial leftovers.",
		LongHelp: "doctor runs PRAGMA integrity_check on the state, re-hashes a random sample of landed files\n" +
			"(all with -all) against state, and lists files under the landing root that state does not\n" +
			"record (orphans) and interrupted writes (.partial). It changes nothing; apply repairs what\n" +
			"it can. Exit codes: 0 healthy, 1 error, 2 problems found.",
		Exec: func(ctx context.Context, args []string) error {
			return c.withState(ctx, false, func(e *reconcile.Engine) error {
				rep, err := doctor(ctx, e, *all, *sample)
				if err != nil {
					return &exitError{1, err}
				}
				if *asJSON {
					enc := json.NewEncoder(c.stdout)
					enc.SetIndent("", "  ")
					_ = enc.Encode(rep)
				} else {
					fmt.Fprintf(c.stdout, "state integrity_check: %s\n", rep.Integrity)
					fmt.Fprintf(c.stdout, "landed files: %d recorded, %d re-hashed\n", rep.Landed, rep.Checked)
					for _, l := range []struct {
						name  string
						paths []string
					}{{"hash differs from state", rep.Mismatched}, {"recorded but missing", rep.Missing}, {"not recorded in state (orphan)", rep.Orphans}, {"interrupted write (.partial)", rep.Partials}} {
						for _, p := range l.paths {
							fmt.Fprintf(c.stdout, "  %s: %s\n", l.name, p)
						}
					}
					if rep.Healthy {
						fmt.Fprintln(c.stdout, "Healthy.")
					} else {
						fmt.Fprintln(c.stdout, "Problems found: `im1 apply` repairs missing and changed files; orphans and .partial files are left for you to inspect.")
					}
				}
				if !rep.Healthy {
					return exit(2)
				}
				return nil
			})
		},
	}
}

func doctor(ctx context.Context, e *reconcile.Engine, all bool, sample int) (*DoctorReport, error) {
	st := e.Store()
	rep := &DoctorReport{FormatVersion: "1.0", Mismatched: []string{}, Missing: []string{}, Orphans: []string{}, Partials: []string{}}
	res, err := st.IntegrityCheck(ctx)
	if err != nil {
		return nil, err
	}
	rep.Integrity = res
	recorded := map[string]string{}
	ds, err := st.Deliveries(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		if d.Status != state.DeliveryLanded && d.Status != state.DeliveryPending {
			continue
		}
		recorded[filepath.ToSlash(filepath.Join(d.Path, landing.ManifestName))] = ""
		files, err := st.Files(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if f.Status == state.FileLanded {
				recorded[f.LandedPath] = f.LandedSHA256
			}
		}
	}
	root := e.Config().Settings.Landing
	var paths []string
	for p, sum := range recorded {
		if sum != "" {
			paths = append(paths, p)
		}
	}
	rep.Landed = len(paths)
	if _, err := os.Stat(root); err == nil {
		dir, err := landing.OpenDir(root, 0o640, 0o750)
		if err != nil {
			return nil, err
		}
		defer dir.Close()
		// Every recorded file is looked for; a random sample (all with
		// -all) is re-hashed, which is what costs.
		rand.Shuffle(len(paths), func(i, j int) { paths[i], paths[j] = paths[j], paths[i] })
		for i, p := range paths {
			if _, err := dir.Stat(p); err != nil {
				rep.Missing = append(rep.Missing, p)
				continue
			}
			if !all && i >= sample {
				continue
			}
			rep.Checked++
			if sum, _, err := dir.Hash(p); err != nil || sum != recorded[p] {
				rep.Mismatched = append(rep.Mismatched, p)
			}
		}
		sort.Strings(rep.Missing)
		sort.Strings(rep.Mismatched)
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			switch _, ok := recorded[rel]; {
			case rel == reconcile.LandingMarker:
			case strings.HasSuffix(rel, landing.PartialSuffix):
				rep.Partials = append(rep.Partials, rel)
			case !ok:
				rep.Orphans = append(rep.Orphans, rel)
			}
			return nil
		})
	}
	rep.Healthy = rep.Integrity == "ok" && len(rep.Mismatched)+len(rep.Missing)+len(rep.Orphans)+len(rep.Partials) == 0
	return rep, nil
}
