package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/im1dev/im1/providers/pgpkey"
	"github.com/im1dev/im1/reconcile"
)

func (c *cli) showCommand() *ffcli.Command {
	fs := c.newFlags("show")
	asJSON := fs.Bool("json", false, "JSON output")
	verbose := fs.Bool("verbose", false, "list every extract instance")
	return &ffcli.Command{
		Name: "show", ShortUsage: "im1 show [-json] [PLANFILE]", FlagSet: fs,
		ShortHelp: "Show a saved plan, or the current state.",
		Exec: func(ctx context.Context, args []string) error {
			if len(args) == 1 {
				d, err := reconcile.ReadPlanFile(args[0])
				if err != nil {
					return &exitError{1, err}
				}
				if *asJSON {
					enc := json.NewEncoder(c.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(d)
				}
				reconcile.RenderPlan(c.stdout, d, reconcile.RenderOptions{Verbose: *verbose})
				return nil
			}
			return c.withState(ctx, false, func(e *reconcile.Engine) error {
				rs, err := e.Store().Resources(ctx)
				if err != nil {
					return err
				}
				sort.Slice(rs, func(i, j int) bool { return rs[i].Addr < rs[j].Addr })
				if *asJSON {
					m := e.Meta()
					var res []any
					for i := range rs {
						res = append(res, resourceJSON(&rs[i]))
					}
					enc := json.NewEncoder(c.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(map[string]any{"format_version": "1.0", "lineage": m.Lineage, "serial": m.Serial, "resources": res})
				}
				for i := range rs {
					if err := printResource(c, &rs[i], false); err != nil {
						return err
					}
					fmt.Fprintln(c.stdout)
				}
				return nil
			})
		},
	}
}

func (c *cli) graphCommand() *ffcli.Command {
	return &ffcli.Command{
		Name: "graph", ShortUsage: "im1 graph", FlagSet: c.newFlags("graph"),
		ShortHelp: "Print the dependency graph of the configuration in DOT.",
		Exec: func(ctx context.Context, args []string) error {
			e, err := c.load(nil, "graph")
			if err != nil {
				return err
			}
			fmt.Fprintln(c.stdout, "digraph im1 {\n  rankdir = \"RL\";\n  node [shape = box];")
			for _, r := range e.Config().Order() {
				fmt.Fprintf(c.stdout, "  %q;\n", r.Addr())
				for _, ref := range r.Refs {
					fmt.Fprintf(c.stdout, "  %q -> %q;\n", r.Addr(), ref.Addr)
				}
			}
			fmt.Fprintln(c.stdout, "}")
			return nil
		},
	}
}

func (c *cli) keysCommand() *ffcli.Command {
	list := &ffcli.Command{
		Name: "list", ShortUsage: "im1 keys list", FlagSet: c.newFlags("keys list"),
		ShortHelp: "List keys in state: fingerprint, expiry and predecessors kept for decryption.",
		Exec: func(ctx context.Context, args []string) error {
			return c.withState(ctx, false, func(e *reconcile.Engine) error {
				rs, err := e.Store().Resources(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "%-28s %-42s %-12s %-22s %s\n", "KEY", "FINGERPRINT", "ALGORITHM", "EXPIRES", "ROLE")
				for _, r := range rs {
					if r.Type != "key" || len(r.Private) == 0 {
						continue
					}
					m, err := pgpkey.UnmarshalMaterial(r.Private)
					if err != nil {
						return fmt.Errorf("%s: %w", r.Addr, err)
					}
					if m.Current != nil {
						fmt.Fprintf(c.stdout, "%-28s %-42s %-12s %-22s %s\n", r.Addr, m.Current.Fingerprint, m.Current.Algorithm, m.Current.Expires.UTC().Format("2006-01-02T15:04Z"), "current")
					}
					for _, p := range m.Previous {
						fmt.Fprintf(c.stdout, "%-28s %-42s %-12s %-22s %s\n", r.Addr, p.Fingerprint, p.Algorithm, p.Expires.UTC().Format("2006-01-02T15:04Z"), "previous (decrypt only)")
					}
				}
				return nil
			})
		},
	}
	efs := c.newFlags("keys export")
	private := efs.Bool("private", false, "export the private key, still passphrase-protected (escrow)")
	all := efs.Bool("all", false, "include predecessor keys")
	export := &ffcli.Command{
		Name: "export", ShortUsage: "im1 keys export [-private] [-all] KEY", FlagSet: efs,
		ShortHelp: "Print a key's armoured public key (or its protected private key) for gpg or a supplier.",
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return &exitError{1, errors.New("keys export needs a key name or address, e.g. emis_2026 or key.emis_2026")}
			}
			addr := args[0]
			if !strings.HasPrefix(addr, "key.") {
				addr = "key." + addr
			}
			return c.withState(ctx, false, func(e *reconcile.Engine) error {
				r, err := e.Store().Resource(ctx, addr)
				if err != nil {
					return err
				}
				if r == nil || len(r.Private) == 0 {
					return &exitError{1, fmt.Errorf("no key %s in state", addr)}
				}
				m, err := pgpkey.UnmarshalMaterial(r.Private)
				if err != nil {
					return err
				}
				if *private {
					_, err = c.stdout.Write(pgpkey.ExportPrivate(m))
					return err
				}
				fmt.Fprint(c.stdout, pgpkey.ExportPublic(m, *all))
				return nil
			})
		},
	}
	return &ffcli.Command{
		Name: "keys", ShortUsage: "im1 keys <list|export>", FlagSet: c.newFlags("keys"),
		ShortHelp:   "List and export OpenPGP keys.",
		Subcommands: []*ffcli.Command{list, export},
		Exec: func(context.Context, []string) error {
			return &exitError{1, errors.New("keys needs a subcommand: list or export")}
		},
	}
}
