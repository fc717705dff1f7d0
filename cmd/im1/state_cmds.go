package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/im1dev/im1/reconcile"
	"github.com/im1dev/im1/state"
)

// withState loads the configuration settings and opens state.
func (c *cli) withState(ctx context.Context, write bool, fn func(e *reconcile.Engine) error) error {
	e, err := c.load(nil, "state")
	if err != nil {
		return err
	}
	open := e.OpenState
	if write {
		open = func(ctx context.Context, _ bool) error { return e.OpenExistingState(ctx) }
	}
	if err := open(ctx, write); err != nil {
		if errors.Is(err, state.ErrNoState) {
			return &exitError{1, errors.New("no state yet: run `im1 init` or `im1 apply` first")}
		}
		return &exitError{1, err}
	}
	defer e.Close()
	if e.Store() == nil {
		return &exitError{1, errors.New("no state yet: run `im1 init` or `im1 apply` first")}
	}
	return fn(e)
}

// mutate runs a state change under the lock and records it in the audit log.
func (c *cli) mutate(ctx context.Context, op string, fn func(e *reconcile.Engine, tx state.Tx) error) error {
	return c.withState(ctx, true, func(e *reconcile.Engine) error {
		id, err := e.Lock(ctx, op)
		if err != nil {
			return &exitError{1, err}
		}
		defer e.Unlock(ctx, id)
		return e.Store().Tx(ctx, func(tx state.Tx) error {
			if err := fn(e, tx); err != nil {
				return err
			}
			_, err := tx.AppendAudit(state.AuditEntry{Time: time.Now().UTC(), Who: reconcile.Who(), Operation: op, Outcome: "ok"})
			return err
		})
	})
}

func (c *cli) stateCommand() *ffcli.Command {
	list := &ffcli.Command{
		Name: "list", ShortUsage: "im1 state list [ADDRESS_PREFIX...]", FlagSet: c.newFlags("state list"),
		ShortHelp: "List the resources in state.",
		Exec: func(ctx context.Context, args []string) error {
			return c.withState(ctx, false, func(e *reconcile.Engine) error {
				rs, err := e.Store().Resources(ctx)
				if err != nil {
					return err
				}
				sort.Slice(rs, func(i, j int) bool { return rs[i].Addr < rs[j].Addr })
				for _, r := range rs {
					if matchesAny(r.Addr, args) {
						fmt.Fprintln(c.stdout, r.Addr)
					}
				}
				return nil
			})
		},
	}
	showFS := c.newFlags("state show")
	showJSON := showFS.Bool("json", false, "JSON output")
	show := &ffcli.Command{
		Name: "show", ShortUsage: "im1 state show [-json] ADDRESS", FlagSet: showFS,
		ShortHelp: "Show one resource in state (private key material is never shown).",
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return &exitError{1, errors.New("state show needs one address")}
			}
			return c.withState(ctx, false, func(e *reconcile.Engine) error {
				r, err := e.Store().Resource(ctx, args[0])
				if err != nil {
					return err
				}
				if r == nil {
					return &exitError{1, fmt.Errorf("no resource %s in state", args[0])}
				}
				return printResource(c, r, *showJSON)
			})
		},
	}
	rm := &ffcli.Command{
		Name: "rm", ShortUsage: "im1 state rm ADDRESS...", FlagSet: c.newFlags("state rm"),
		ShortHelp: "Forget resources without touching the world (their key material goes too).",
		Exec: func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return &exitError{1, errors.New("state rm needs at least one address")}
			}
			err := c.mutate(ctx, "state rm", func(e *reconcile.Engine, tx state.Tx) error {
				for _, a := range args {
					r, err := e.Store().Resource(ctx, a)
					if err != nil {
						return err
					}
					if r == nil {
						return &exitError{1, fmt.Errorf("no resource %s in state (nothing was removed)", a)}
					}
					if err := tx.DeleteResource(a); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			// Said only once the transaction committed: all or nothing.
			for _, a := range args {
				fmt.Fprintf(c.stdout, "Removed %s\n", a)
			}
			return nil
		},
	}
	mv := &ffcli.Command{
		Name: "mv", ShortUsage: "im1 state mv SOURCE DESTINATION", FlagSet: c.newFlags("state mv"),
		ShortHelp: "Rename a resource in state (after renaming its block).",
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 2 {
				return &exitError{1, errors.New("state mv needs a source and a destination address")}
			}
			return c.mutate(ctx, "state mv", func(e *reconcile.Engine, tx state.Tx) error {
				if strings.SplitN(args[0], ".", 2)[0] != strings.SplitN(args[1], ".", 2)[0] {
					return &exitError{1, fmt.Errorf("cannot move %s to %s: the resource type differs", args[0], args[1])}
				}
				if err := tx.MoveResource(args[0], args[1]); err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "Moved %s to %s\n", args[0], args[1])
				return nil
			})
		},
	}
	pull := &ffcli.Command{
		Name: "pull", ShortUsage: "im1 state pull", FlagSet: c.newFlags("state pull"),
		ShortHelp: "Print the state as JSON (resources, lineage, serial; never key material).",
		Exec: func(ctx context.Context, args []string) error {
			return c.withState(ctx, false, func(e *reconcile.Engine) error {
				rs, err := e.Store().Resources(ctx)
				if err != nil {
					return err
				}
				m := e.Meta()
				out := map[string]any{"format_version": "1.0", "lineage": m.Lineage, "serial": m.Serial}
				var res []any
				for i := range rs {
					res = append(res, resourceJSON(&rs[i]))
				}
				out["resources"] = res
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			})
		},
	}
	backup := &ffcli.Command{
		Name: "backup", ShortUsage: "im1 state backup FILE", FlagSet: c.newFlags("state backup"),
		ShortHelp: "Write a consistent copy of the state (SQLite VACUUM INTO): the escrow of the keys.",
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return &exitError{1, errors.New("state backup needs a file name")}
			}
			return c.withState(ctx, false, func(e *reconcile.Engine) error {
				if err := e.Store().Backup(ctx, args[0]); err != nil {
					return &exitError{1, err}
				}
				fmt.Fprintf(c.stdout, "State backed up to %s\n", args[0])
				return nil
			})
		},
	}
	return &ffcli.Command{
		Name: "state", ShortUsage: "im1 state <list|show|rm|mv|pull|backup>", FlagSet: c.newFlags("state"),
		ShortHelp:   "Inspect and edit state.",
		Subcommands: []*ffcli.Command{list, show, rm, mv, pull, backup},
		Exec: func(context.Context, []string) error {
			return &exitError{1, errors.New("state needs a subcommand: list, show, rm, mv, pull or backup")}
		},
	}
}

func matchesAny(addr string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if addr == p || strings.HasPrefix(addr, p+".") || strings.HasPrefix(addr, p+"[") {
			return true
		}
	}
	return false
}

func resourceJSON(r *state.Resource) map[string]any {
	var attrs any
	_ = json.Unmarshal(r.Attrs, &attrs)
	return map[string]any{
		"address": r.Addr, "type": r.Type, "name": r.Name, "index": r.Key, "status": r.Status,
		"attributes": attrs, "depends_on": r.Deps, "updated": r.UpdatedAt,
		"private_material": len(r.Private) > 0,
	}
}

func printResource(c *cli, r *state.Resource, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(resourceJSON(r))
	}
	var attrs map[string]any
	_ = json.Unmarshal(r.Attrs, &attrs)
	fmt.Fprintf(c.stdout, "# %s (%s)\n%s %q {\n", r.Addr, r.Status, r.Type, r.Name)
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		if k != "address" && attrs[k] != nil {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		b, _ := json.Marshal(attrs[k])
		fmt.Fprintf(c.stdout, "    %s = %s\n", k, b)
	}
	if len(r.Private) > 0 {
		fmt.Fprintf(c.stdout, "    # private key material: passphrase-protected, not shown\n")
	}
	fmt.Fprintln(c.stdout, "}")
	return nil
}
