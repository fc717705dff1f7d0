package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/im1dev/im1/coverage"
)

func (c *cli) coverageCommand() *ffcli.Command {
	fs := c.newFlags("coverage")
	var rf runFlags
	fs.Var(varFlag{args: &rf.vars}, "var", "set a variable (repeatable)")
	fs.Var(varFlag{args: &rf.vars, file: true}, "var-file", "read variables from a file (repeatable)")
	fs.BoolVar(&rf.refresh, "refresh", true, "observe the suppliers' sites and landed files first, as plan does")
	asJSON := fs.Bool("json", false, "the versioned JSON report")
	htmlOut := fs.String("html", "", "also write a self-contained HTML calendar page to FILE")
	return &ffcli.Command{
		Name: "coverage", ShortUsage: "im1 coverage [-json] [-html FILE]", FlagSet: fs,
		ShortHelp: "Show per organisation and day what landed, what is missing and why (read-only).",
		LongHelp: "coverage plans like plan does (it writes nothing and takes no lock), then lists for every\n" +
			"extract and organisation which expected deliveries landed, with their row counts, and which\n" +
			"are missing, blocked, quarantined, awaiting the supplier or not yet due, with the plan's reason.\n" +
			"-html FILE writes the same as one self-contained page: a calendar heat map per organisation\n" +
			"and dataset that needs no network.",
		Exec: func(ctx context.Context, args []string) error {
			e, plan, err := c.planReadOnly(ctx, &rf, "coverage")
			if err != nil {
				return err
			}
			defer e.Close()
			rep, err := coverage.Build(ctx, plan.Document(), e.Store())
			if err != nil {
				return &exitError{1, err}
			}
			if *htmlOut != "" {
				if err := writeCoveragePage(*htmlOut, rep); err != nil {
					return &exitError{1, err}
				}
			}
			if *asJSON {
				err = rep.WriteJSON(c.stdout)
			} else {
				err = rep.WriteText(c.stdout)
			}
			if err != nil {
				return &exitError{1, err}
			}
			if *htmlOut != "" {
				w := c.stdout
				if *asJSON {
					w = c.stderr // stdout holds only the JSON document
				}
				fmt.Fprintf(w, "\nCoverage page: %s\n", *htmlOut)
			}
			return nil
		},
	}
}

// writeCoveragePage writes the page whole or not at all.
func writeCoveragePage(path string, rep *coverage.Report) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".coverage-*.html")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := rep.WriteHTML(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
