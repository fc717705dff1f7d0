// Command im1 runs GP bulk-data extraction (EMIS Web and TPP SystmOne IM1
// Bulk extracts) as code: declared in HCL, planned, applied, and checked for
// drift. This package is only the command line: flags, output, exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/im1dev/im1/internal/failpoint"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "0.1.0-dev"

func main() {
	os.Exit(profiled(func() int { return run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr) }))
}

// profiled runs fn under a CPU profile written to $IM1_CPUPROFILE, and
// writes an allocation profile to $IM1_MEMPROFILE at its end, if set: how
// bench/README.md's figures for whole commands were profiled.
func profiled(fn func() int) int {
	if path := os.Getenv("IM1_MEMPROFILE"); path != "" {
		defer func() {
			if err := writeProfile(path, pprof.Lookup("allocs").WriteTo); err != nil {
				fmt.Fprintln(os.Stderr, "im1: IM1_MEMPROFILE:", err)
			}
		}()
	}
	path := os.Getenv("IM1_CPUPROFILE")
	if path == "" {
		return fn()
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "im1: IM1_CPUPROFILE:", err)
		return 1
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "im1: IM1_CPUPROFILE:", err)
		return 1
	}
	defer pprof.StopCPUProfile()
	return fn()
}

// writeProfile creates path and writes a profile to it.
func writeProfile(path string, write func(io.Writer, int) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = write(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// exitError carries an exit code through ffcli's error return.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

// exit returns an error that makes run exit with code without printing
// anything more (the command already explained itself).
func exit(code int) error { return &exitError{code: code} }

// cli is the shared state of one invocation.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	chdir          string
	logFormat      string
	noColor        bool
	log            *slog.Logger
	// interrupts counts SIGINTs: the first stops gracefully, the second exits.
	ctx context.Context
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	ctx, stop := c.signals()
	defer stop()
	defer failpoint.Pause("before-exit") // test builds: a window for a second SIGINT
	c.ctx = ctx
	root := c.rootCommand()
	if err := root.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	c.setupLog()
	if c.chdir != "" {
		// As Terraform does: everything, including -var-file, -out and
		// plan-file paths, is relative to the -chdir directory. The old
		// directory comes back afterwards for in-process callers (tests).
		back, err := os.Getwd()
		if err == nil {
			err = os.Chdir(c.chdir)
		}
		if err != nil {
			fmt.Fprintf(stderr, "Error: -chdir: %v\n", err)
			return 1
		}
		defer os.Chdir(back)
		c.chdir = ""
	}
	if err := root.Run(ctx); err != nil {
		var ee *exitError
		switch {
		case errors.As(err, &ee):
			if ee.err != nil {
				fmt.Fprintf(stderr, "Error: %v\n", ee.err)
			}
			return ee.code
		case errors.Is(err, flag.ErrHelp):
			return 0
		default:
			var nx ffcli.NoExecError
			if errors.As(err, &nx) {
				fmt.Fprint(stderr, ffcli.DefaultUsageFunc(nx.Command))
				return 1
			}
			fmt.Fprintf(stderr, "Error: %v\n", err)
			return 1
		}
	}
	return 0
}

// signals makes the first SIGINT/SIGTERM cancel the context (apply stops
// gracefully and saves what completed) and the second exit at once.
func (c *cli) signals() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		n := 0
		for range ch {
			n++
			if n == 1 {
				fmt.Fprintln(c.stderr, "\nInterrupt received. Stopping gracefully: completed steps are saved. Interrupt again to exit at once.")
				cancel()
				continue
			}
			fmt.Fprintln(c.stderr, "\nTwo interrupts received. Exiting immediately; the next apply re-checks and repairs anything half-done.")
			os.Exit(130)
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

func (c *cli) setupLog() {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if os.Getenv("IM1_LOG") == "debug" {
		opts.Level = slog.LevelDebug
	}
	if strings.EqualFold(c.logFormat, "json") {
		c.log = slog.New(slog.NewJSONHandler(c.stderr, opts))
	} else {
		c.log = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
}

func (c *cli) rootCommand() *ffcli.Command {
	fs := flag.NewFlagSet("im1", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.chdir, "chdir", "", "switch to this directory before doing anything")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&c.noColor, "no-color", false, "no colour in output")
	return &ffcli.Command{
		Name:       "im1",
		ShortUsage: "im1 [-chdir=DIR] <command> [flags] [args]",
		ShortHelp:  "GP bulk-data extraction as code.",
		LongHelp: "im1 runs the IM1 Bulk extracts of EMIS Web and TPP SystmOne the way platform teams run\n" +
			"infrastructure: declared in *.im1.hcl files, planned, reviewed, applied, and checked for drift.\n" +
			"Flags take one or two dashes (-out or --out).",
		FlagSet: fs,
		Subcommands: []*ffcli.Command{
			c.initCommand(), c.validateCommand(), c.fmtCommand(), c.planCommand(), c.applyCommand(),
			c.showCommand(), c.stateCommand(), c.forceUnlockCommand(), c.graphCommand(), c.keysCommand(),
			c.driftCommand(), c.doctorCommand(), c.simCommand(), c.versionCommand(), c.coverageCommand(), c.demoCommand(),
		},
		Exec: func(context.Context, []string) error {
			return flag.ErrHelp
		},
	}
}

// newFlags makes a subcommand flag set that reports to stderr.
func (c *cli) newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	return fs
}

// dir is the configuration directory after -chdir.
func (c *cli) dir() string {
	if c.chdir != "" {
		return c.chdir
	}
	return "."
}
