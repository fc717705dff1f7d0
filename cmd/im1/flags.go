package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/im1dev/im1/config"
)

type varFlag struct {
	args *[]config.VarArg
	file bool
}

func (v varFlag) String() string { return "" }
func (v varFlag) Set(s string) error {
	if v.file {
		*v.args = append(*v.args, config.VarArg{File: s})
		return nil
	}
	if !strings.Contains(s, "=") {
		return fmt.Errorf("-var %q: expected name=value", s)
	}
	*v.args = append(*v.args, config.VarArg{Assign: s})
	return nil
}

// listFlag collects a repeatable string flag (-target).
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// runFlags are the flags shared by plan and apply.
type runFlags struct {
	vars        []config.VarArg
	targets     listFlag
	parallelism int
	lockTimeout time.Duration
	refresh     bool
	refreshOnly bool
	json        bool
	verbose     bool
	// purgeWithdrawn is apply's -purge-withdrawn.
	purgeWithdrawn bool
}

func (r *runFlags) register(fs *flag.FlagSet) {
	fs.Var(varFlag{args: &r.vars}, "var", "set a variable: -var 'name=value' (repeatable)")
	fs.Var(varFlag{args: &r.vars, file: true}, "var-file", "read variables from an HCL file (repeatable)")
	fs.Var(&r.targets, "target", "limit to this address and what it depends on (repeatable)")
	fs.IntVar(&r.parallelism, "parallelism", 10, "apply at most this many steps at once")
	fs.DurationVar(&r.lockTimeout, "lock-timeout", 0, "wait this long for the state lock")
	fs.BoolVar(&r.refresh, "refresh", true, "observe the suppliers' sites and landed files before planning")
	fs.BoolVar(&r.refreshOnly, "refresh-only", false, "only report and accept drift; change nothing else")
	fs.BoolVar(&r.json, "json", false, "machine-readable JSON output")
	fs.BoolVar(&r.verbose, "verbose", false, "list every extract instance instead of ranges")
}
