package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/im1dev/im1/config"
	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/reconcile"
)

// now is the clock; IM1_NOW (RFC3339 or yyyy-mm-dd) fixes it for tests and
// rehearsals, since plans depend on "today".
func now() func() time.Time {
	v := os.Getenv("IM1_NOW")
	if v == "" {
		return time.Now
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		t, err = time.Parse(time.DateOnly, v)
	}
	if err != nil {
		return time.Now
	}
	return func() time.Time { return t }
}

// writeDiags prints diagnostics with source snippets.
func (c *cli) writeDiags(cfg *config.Config, diags hcl.Diagnostics) {
	if len(diags) == 0 {
		return
	}
	var files map[string]*hcl.File
	if cfg != nil {
		files = cfg.Files
	}
	_ = config.WriteDiagnostics(c.stderr, files, diags, 100, false)
}

// load reads the configuration; errors are printed and returned as exit 1.
func (c *cli) load(rf *runFlags, op string) (*reconcile.Engine, error) {
	return c.loadWith(rf, op, nil)
}

func (c *cli) loadWith(rf *runFlags, op string, progress providers.Progress) (*reconcile.Engine, error) {
	opts := reconcile.Options{
		Progress:  progress,
		Dir:       c.dir(),
		Registry:  registry(),
		Now:       now(),
		Log:       c.log,
		Operation: op,
		// A plan opens state read-only: it may read it during Load.
		EarlyState: op == "plan",
	}
	if rf != nil {
		opts.Vars = rf.vars
		opts.Targets = rf.targets
		opts.Parallelism = rf.parallelism
		opts.LockTimeout = rf.lockTimeout
		opts.NoRefresh = !rf.refresh
		opts.RefreshOnly = rf.refreshOnly
		opts.PurgeWithdrawn = rf.purgeWithdrawn
	}
	e, diags := reconcile.Load(opts)
	var cfg *config.Config
	if e != nil {
		cfg = e.Config()
	}
	c.writeDiags(cfg, diags)
	if diags.HasErrors() {
		return nil, exit(1)
	}
	return e, nil
}

// planReadOnly loads the configuration, opens state read-only and plans,
// printing diagnostics: what drift and coverage start from. The caller
// closes the engine.
func (c *cli) planReadOnly(ctx context.Context, rf *runFlags, op string) (*reconcile.Engine, *reconcile.Plan, error) {
	e, err := c.load(rf, op)
	if err != nil {
		return nil, nil, err
	}
	if err := e.OpenState(ctx, false); err != nil {
		return nil, nil, &exitError{1, err}
	}
	plan, diags := e.Plan(ctx)
	c.writeDiags(e.Config(), diags)
	if plan == nil || plan.Errored() {
		e.Close()
		return nil, nil, exit(1)
	}
	return e, plan, nil
}

func (c *cli) initCommand() *ffcli.Command {
	fs := c.newFlags("init")
	return &ffcli.Command{
		Name: "init", ShortUsage: "im1 init", FlagSet: fs,
		ShortHelp: "Validate the configuration and create the state if it does not exist.",
		Exec: func(ctx context.Context, args []string) error {
			e, err := c.load(nil, "init")
			if err != nil {
				return err
			}
			if err := e.OpenState(ctx, true); err != nil {
				return &exitError{1, err}
			}
			defer e.Close()
			m := e.Meta()
			fmt.Fprintf(c.stdout, "im1 initialised in %s\nState: %s (lineage %s, serial %d)\n", e.Config().Dir, e.Config().Settings.StatePath, m.Lineage, m.Serial)
			return nil
		},
	}
}

func (c *cli) validateCommand() *ffcli.Command {
	fs := c.newFlags("validate")
	asJSON := fs.Bool("json", false, "diagnostics as JSON")
	var rf runFlags
	fs.Var(varFlag{args: &rf.vars}, "var", "set a variable (repeatable)")
	fs.Var(varFlag{args: &rf.vars, file: true}, "var-file", "read variables from a file (repeatable)")
	return &ffcli.Command{
		Name: "validate", ShortUsage: "im1 validate [-json]", FlagSet: fs,
		ShortHelp: "Check the configuration without touching state or any supplier.",
		Exec: func(ctx context.Context, args []string) error {
			cfg, diags := config.Load(c.dir(), config.LoadOptions{Schemas: reconcile.Schemas(registry()), Vars: rf.vars})
			if *asJSON {
				out := map[string]any{"format_version": "1.0", "valid": !diags.HasErrors(), "diagnostics": config.JSONDiagnostics(cfg.Files, diags)}
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				_ = enc.Encode(out)
			} else {
				c.writeDiags(cfg, diags)
				if !diags.HasErrors() {
					fmt.Fprintln(c.stdout, "Success! The configuration is valid.")
				}
			}
			if diags.HasErrors() {
				return exit(1)
			}
			return nil
		},
	}
}

func (c *cli) fmtCommand() *ffcli.Command {
	fs := c.newFlags("fmt")
	check := fs.Bool("check", false, "exit 3 and list files that are not formatted, changing nothing")
	return &ffcli.Command{
		Name: "fmt", ShortUsage: "im1 fmt [-check]", FlagSet: fs,
		ShortHelp: "Rewrite *.im1.hcl files in the canonical format.",
		Exec: func(ctx context.Context, args []string) error {
			changed, diags := config.FormatDir(c.dir(), !*check)
			c.writeDiags(nil, diags)
			if diags.HasErrors() {
				return exit(1)
			}
			for _, f := range changed {
				fmt.Fprintln(c.stdout, f)
			}
			if *check && len(changed) > 0 {
				return exit(3)
			}
			return nil
		},
	}
}

func (c *cli) planCommand() *ffcli.Command {
	fs := c.newFlags("plan")
	var rf runFlags
	rf.register(fs)
	out := fs.String("out", "", "save the plan to this file for `im1 apply FILE`")
	detailed := fs.Bool("detailed-exitcode", false, "exit 0 with no changes, 1 on error, 2 with changes")
	return &ffcli.Command{
		Name: "plan", ShortUsage: "im1 plan [flags]", FlagSet: fs,
		ShortHelp: "Show what apply would do: configuration vs state vs what the suppliers delivered.",
		LongHelp: "plan reads the configuration and state, observes the suppliers' sites and the landed\n" +
			"files, and prints the actions apply would take, each with its reason. It writes nothing\n" +
			"(except the -out file) and takes no lock.",
		Exec: func(ctx context.Context, args []string) error {
			e, err := c.load(&rf, "plan")
			if err != nil {
				return err
			}
			if err := e.OpenState(ctx, false); err != nil {
				return &exitError{1, err}
			}
			defer e.Close()
			if err := e.CheckLanding(false); err != nil {
				fmt.Fprintf(c.stderr, "Warning: %v\n\n", err)
			}
			if rf.json && *out == "" && len(rf.targets) == 0 {
				// Streamed: each change is written as it is planned, so
				// memory does not grow with the number of expected deliveries.
				js := reconcile.NewJSONStream(c.stdout, e)
				e.SetStream(js.Change)
				plan, diags := e.Plan(ctx)
				if plan == nil {
					c.writeDiags(e.Config(), diags)
					return exit(1)
				}
				if err := js.Finish(plan); err != nil {
					return &exitError{1, err}
				}
				c.writeDiags(e.Config(), diags)
				if plan.Errored() {
					return exit(1)
				}
				if *detailed && (!plan.Empty() || (rf.refreshOnly && len(plan.Drift) > 0)) {
					return exit(2)
				}
				return nil
			}
			plan, diags := e.Plan(ctx)
			c.writeDiags(e.Config(), diags)
			if plan == nil {
				return exit(1)
			}
			// The text plan shows no unchanged values: its outline skips
			// encoding them; -json and a saved plan carry them all.
			doc := plan.Outline()
			if rf.json || *out != "" {
				doc = plan.Document()
			}
			if rf.json {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				_ = enc.Encode(doc)
			} else {
				reconcile.RenderPlan(c.stdout, doc, reconcile.RenderOptions{Verbose: rf.verbose})
			}
			if plan.Errored() {
				return exit(1)
			}
			if *out != "" {
				if err := reconcile.WritePlanFile(*out, doc); err != nil {
					return &exitError{1, err}
				}
				if !rf.json {
					fmt.Fprintf(c.stdout, "\nSaved the plan to %s. To apply exactly this plan, run: im1 apply %s\n", *out, *out)
				}
			}
			if *detailed && (!doc.Empty() || (rf.refreshOnly && len(doc.Drift) > 0)) {
				return exit(2)
			}
			return nil
		},
	}
}

func (c *cli) applyCommand() *ffcli.Command {
	fs := c.newFlags("apply")
	var rf runFlags
	rf.register(fs)
	auto := fs.Bool("auto-approve", false, "apply without asking for confirmation")
	purge := fs.Bool("purge-withdrawn", false, "remove data landed under an IG approval or practice permission that has ended (recorded in the audit log)")
	force := fs.Bool("force", false, "accept a state older than the landing it manages (restored from a backup)")
	return &ffcli.Command{
		Name: "apply", ShortUsage: "im1 apply [flags] [PLANFILE]", FlagSet: fs,
		ShortHelp: "Make it so: create and rotate keys, fetch, verify, land and repair extracts.",
		LongHelp: "apply plans (or takes a saved plan), asks for confirmation unless -auto-approve or a\n" +
			"plan file is given, then carries the plan out in dependency order, saving state after\n" +
			"every completed step. A second apply at the same time fails fast and names the holder.",
		Exec: func(ctx context.Context, args []string) error {
			var saved *reconcile.Doc
			if len(args) > 1 {
				return &exitError{1, errors.New("apply takes at most one plan file")}
			}
			if len(args) == 1 {
				d, err := reconcile.ReadPlanFile(args[0])
				if err != nil {
					return &exitError{1, err}
				}
				saved = d
				rf.targets = append(rf.targets, d.Targets...)
				rf.refreshOnly = d.RefreshOnly
			}
			progress, wait := newProgress(c.stderr)
			defer wait()
			rf.purgeWithdrawn = *purge
			e, err := c.loadWith(&rf, "apply", progress)
			if err != nil {
				return err
			}
			if err := e.OpenState(ctx, true); err != nil {
				return &exitError{1, err}
			}
			defer e.Close()
			lockID, err := e.Lock(ctx, "apply")
			if err != nil {
				return &exitError{1, fmt.Errorf("acquiring the state lock: %w", err)}
			}
			defer e.Unlock(ctx, lockID)
			if saved != nil {
				if err := reconcile.CheckSaved(saved, e.Meta(), e.Config()); err != nil {
					return &exitError{1, err}
				}
			}
			if err := e.CheckLanding(*force); err != nil {
				return &exitError{1, err}
			}
			defer func() {
				if err := e.WriteLandingMarker(); err != nil {
					fmt.Fprintf(c.stderr, "Warning: writing the landing marker: %v\n", err)
				}
			}()
			plan, diags := e.Plan(ctx)
			c.writeDiags(e.Config(), diags)
			if plan == nil || plan.Errored() {
				return exit(1)
			}
			if saved != nil {
				plan.Restrict(saved)
			}
			doc := plan.Document() // its hash is the audit log's plan identity
			reconcile.RenderPlan(c.stdout, doc, reconcile.RenderOptions{Verbose: rf.verbose})
			if plan.Empty() {
				return nil
			}
			if saved == nil && !*auto {
				fmt.Fprint(c.stdout, "\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")
				line, _ := bufio.NewReader(c.stdin).ReadString('\n')
				if strings.TrimSpace(line) != "yes" {
					fmt.Fprintln(c.stdout, "\nApply cancelled.")
					return exit(1)
				}
			}
			fmt.Fprintln(c.stdout)
			res, adiags := e.Apply(ctx, plan, doc.Hash(), &lineObserver{w: c.stdout})
			c.writeDiags(e.Config(), adiags)
			if res != nil {
				fmt.Fprintf(c.stdout, "\nApply complete! Resources: %d added, %d changed, %d destroyed.", res.Added, res.Changed, res.Destroyed)
				if res.Failed+res.Skipped > 0 {
					fmt.Fprintf(c.stdout, " %d failed, %d skipped.", res.Failed, res.Skipped)
				}
				fmt.Fprintln(c.stdout)
			}
			if adiags.HasErrors() {
				return exit(1)
			}
			return nil
		},
	}
}

// lineObserver prints apply progress one line per event, as Terraform does.
type lineObserver struct {
	w interface{ Write([]byte) (int, error) }
}

var ing = map[providers.Action][2]string{
	providers.Create:  {"Creating...", "Creation complete"},
	providers.Update:  {"Modifying...", "Modifications complete"},
	providers.Rotate:  {"Rotating...", "Rotation complete"},
	providers.Destroy: {"Destroying...", "Destruction complete"},
	providers.Replace: {"Replacing...", "Replacement complete"},
	providers.NoOp:    {"Reconciling...", "Reconciled"},
}

func (o *lineObserver) Started(addr string, a providers.Action) {
	fmt.Fprintf(o.w, "%s: %s\n", addr, ing[a][0])
}
func (o *lineObserver) Finished(addr string, a providers.Action, err error, d time.Duration) {
	if err != nil {
		fmt.Fprintf(o.w, "%s: failed after %s\n", addr, d.Round(time.Millisecond))
		return
	}
	fmt.Fprintf(o.w, "%s: %s after %s\n", addr, ing[a][1], d.Round(time.Millisecond))
}
func (o *lineObserver) Skipped(addr, because string) {
	fmt.Fprintf(o.w, "%s: skipped (%s)\n", addr, because)
}

func (c *cli) forceUnlockCommand() *ffcli.Command {
	fs := c.newFlags("force-unlock")
	return &ffcli.Command{
		Name: "force-unlock", ShortUsage: "im1 force-unlock LOCK_ID", FlagSet: fs,
		ShortHelp: "Remove a stale state lock left by a process that died.",
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return &exitError{1, errors.New("force-unlock needs the lock ID (shown in the error of the command that found the lock)")}
			}
			e, err := c.load(nil, "force-unlock")
			if err != nil {
				return err
			}
			if err := e.OpenExistingState(ctx); err != nil {
				return &exitError{1, err}
			}
			defer e.Close()
			if err := e.Store().ForceUnlock(ctx, args[0]); err != nil { // audited by the store
				return &exitError{1, err}
			}
			fmt.Fprintf(c.stdout, "State unlocked (lock %s).\n", args[0])
			return nil
		},
	}
}

func (c *cli) versionCommand() *ffcli.Command {
	return &ffcli.Command{
		Name: "version", ShortUsage: "im1 version", FlagSet: c.newFlags("version"),
		ShortHelp: "Print the version.",
		Exec: func(context.Context, []string) error {
			fmt.Fprintf(c.stdout, "im1 %s\n", Version)
			return nil
		},
	}
}
