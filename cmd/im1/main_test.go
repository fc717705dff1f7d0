package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/im1dev/im1/config"
	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/schema"
	"github.com/im1dev/im1/state"
)

var update = flag.Bool("update", false, "rewrite golden files and testscript expectations")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"im1": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scenarios in testdata/script/*.txtar against the
// real binary entry point, real SQLite state and (where named) real gpg.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: *update,
		Setup: func(env *testscript.Env) error {
			env.Setenv("IM1_KEY_PASSPHRASE", "correct horse battery staple 2026")
			env.Setenv("IM1_NOW", "2026-11-21T09:00:00Z")
			env.Setenv("GNUPGHOME", filepath.Join(env.WorkDir, ".gnupg"))
			return os.MkdirAll(filepath.Join(env.WorkDir, ".gnupg"), 0o700)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// exitcode N cmd args...: run a program and require exit code N.
			"exitcode": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 2 {
					ts.Fatalf("usage: exitcode N command [args...]")
				}
				want, err := strconv.Atoi(args[0])
				ts.Check(err)
				err = ts.Exec(args[1], args[2:]...)
				got := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					got = ee.ExitCode()
				} else if err != nil {
					ts.Fatalf("%v", err)
				}
				if (got == want) == neg {
					ts.Fatalf("exit code %d, want %d", got, want)
				}
			},
			// holdlock STATEFILE: this test process takes the apply lock, as
			// another im1 would, and exports its ID as $LOCKID.
			"holdlock": func(ts *testscript.TestScript, neg bool, args []string) {
				ctx := context.Background()
				st, err := state.OpenSQLite(ctx, ts.MkAbs(args[0]), state.Options{})
				ts.Check(err)
				info := state.LockInfo{ID: "11112222333344445555666677778888", Operation: "apply", Who: "ci@runner-7", PID: os.Getpid(), Created: time.Now().UTC(), Expires: time.Now().Add(time.Hour).UTC()}
				ts.Check(st.Lock(ctx, info))
				ts.Setenv("LOCKID", info.ID)
				ts.Defer(func() { st.Close() })
			},
			// waitfile GLOB: wait (up to 30s) until a file matches.
			"waitfile": func(ts *testscript.TestScript, neg bool, args []string) {
				deadline := time.Now().Add(30 * time.Second)
				for time.Now().Before(deadline) {
					if m, _ := filepath.Glob(ts.MkAbs(args[0])); len(m) > 0 {
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				ts.Fatalf("timed out waiting for %s", args[0])
			},
			// simconfig CONNECT.JSON TEMPLATE OUT: fill a configuration
			// template with how to reach a simulator.
			"simconfig": func(ts *testscript.TestScript, neg bool, args []string) {
				info, err := emissim.ReadConnectInfo(ts.MkAbs(args[0]))
				ts.Check(err)
				r := strings.NewReplacer("{{port}}", strconv.Itoa(info.Port), "{{user}}", info.User,
					"{{host_key}}", info.HostKey, "{{key_file}}", info.ClientKeyFile)
				ts.Check(os.WriteFile(ts.MkAbs(args[2]), []byte(r.Replace(ts.ReadFile(args[1]))), 0o640))
			},
			// perm MODE FILE: the file's permission bits are exactly MODE.
			"perm": func(ts *testscript.TestScript, neg bool, args []string) {
				want, err := strconv.ParseUint(args[0], 8, 32)
				ts.Check(err)
				fi, err := os.Stat(ts.MkAbs(args[1]))
				ts.Check(err)
				if (uint64(fi.Mode().Perm()) == want) == neg {
					ts.Fatalf("%s has mode %o, want %o", args[1], fi.Mode().Perm(), want)
				}
			},
			// nocontains TEXT FILE...: no file contains the literal text (secret hygiene).
			"nocontains": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 2 {
					ts.Fatalf("usage: nocontains TEXT FILE...")
				}
				for _, f := range args[1:] {
					b := ts.ReadFile(f) // understands stdout and stderr
					if strings.Contains(b, args[0]) != neg {
						ts.Fatalf("%s contains %q", f, args[0])
					}
				}
			},
		},
		RequireExplicitExec: false,
	})
}

// TestSchemaDocs keeps docs/schema.md equal to what the schemas say.
func TestSchemaDocs(t *testing.T) {
	var buf bytes.Buffer
	buf.WriteString("# Configuration reference\n\nGenerated from the schemas in the code by `go test ./cmd/im1 -run TestSchemaDocs -update`; a test fails when it drifts.\n" +
		"Files `*.im1.hcl` in one directory form a configuration. Attribute names are snake_case. Durations take `h`, `m`, `s`, and whole days `d` or weeks `w`.\n\n")
	schema.WriteMarkdown(&buf, "im1", "", config.SettingsSchema)
	buf.WriteString("## `variable \"<name>\"`\n\nAn input variable: `type`, `default`, `description`, `sensitive`, and repeatable `validation { condition, error_message }` blocks. Values come from `IM1_VAR_<name>`, then `-var-file` and `-var` in command-line order; reference as `var.<name>`.\n\n")
	reg := registry()
	types := make([]string, 0, len(reg))
	for t := range reg {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, typ := range types {
		schema.WriteMarkdown(&buf, typ, ` "<name>"`, reg[typ].Schema())
	}
	path := filepath.Join("..", "..", "docs", "schema.md")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, buf.Bytes()) {
		t.Errorf("docs/schema.md is out of date with the schemas; run: go test ./cmd/im1 -run TestSchemaDocs -update")
	}
}

// TestExamples validates and plans every example offline, as a newcomer's
// first command does.
func TestExamples(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*"))
	if len(dirs) == 0 {
		t.Fatal("no examples")
	}
	t.Setenv("IM1_NOW", "2026-11-21")
	for _, d := range dirs {
		if m, _ := filepath.Glob(filepath.Join(d, "*.im1.hcl")); len(m) == 0 {
			continue
		}
		t.Run(filepath.Base(d), func(t *testing.T) {
			for _, args := range [][]string{{"validate"}, {"fmt", "-check"}, {"plan"}} {
				var out, errb bytes.Buffer
				if code := run(append([]string{"-chdir", d}, args...), strings.NewReader(""), &out, &errb); code != 0 {
					t.Errorf("%v: exit %d\n%s%s", args, code, out.String(), errb.String())
				}
			}
			if _, err := os.Stat(filepath.Join(d, ".im1")); err == nil {
				t.Errorf("plan created state in %s", d)
			}
		})
	}
}
