// Package reconcile is the engine: it loads a configuration, reads state,
// asks each provider to refresh and plan, renders the plan, and applies it
// by walking the dependency graph with bounded parallelism, committing
// state after every completed step.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/im1dev/im1/config"
	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/schema"
	"github.com/im1dev/im1/state"
)

// DefaultParallelism matches Terraform's.
const DefaultParallelism = 10

// Options configure one run.
type Options struct {
	Dir      string
	Vars     []config.VarArg
	Registry providers.Registry
	Now      func() time.Time
	Getenv   func(string) string
	Environ  []string
	Log      *slog.Logger
	Progress providers.Progress
	// Parallelism bounds concurrent apply steps (default 10).
	Parallelism int
	// Targets limits planning to these addresses and what they depend on.
	Targets []string
	// NoRefresh skips observing the world (plan -refresh=false).
	NoRefresh bool
	// RefreshOnly plans only accepting observed drift into state.
	RefreshOnly bool
	// LockTimeout is how long apply waits for the state lock.
	LockTimeout time.Duration
	// Operation names the command for the lock and audit ("apply").
	Operation string
	// PurgeWithdrawn lets apply remove data landed under ended approvals.
	PurgeWithdrawn bool
	// Stream, when set, receives each change as soon as it is planned
	// (plan -json writes it out), and the plan then keeps no per-instance
	// detail. Such a plan cannot be applied.
	Stream func(*Change) error
	// EarlyState opens the state read-only and reads its resources while
	// Load validates the configuration (plan, whose OpenState is
	// read-only): at national scale each takes about 0.4 s.
	EarlyState bool
}

// early is the state opened and read during Load (Options.EarlyState).
type early struct {
	store  *state.SQLite
	serial int64 // read before the resources
	rs     []state.Resource
	err    error
}

// Engine is one loaded configuration and its state.
type Engine struct {
	opts  Options
	cfg   *config.Config
	store state.Store
	meta  state.Meta
	env   *providers.Env
	// early, with Options.EarlyState, delivers the state read during
	// Load; OpenState adopts its store, the first Plan its resources.
	early    chan early
	earlyRes *early
}

// Schemas returns the registry's block schemas.
func Schemas(reg providers.Registry) map[string]*schema.Block {
	out := make(map[string]*schema.Block, len(reg))
	for t, p := range reg {
		out[t] = p.Schema()
	}
	return out
}

// Load reads and validates the configuration. It touches no state. On
// errors the returned engine only serves Config() for rendering them.
func Load(opts Options) (*Engine, hcl.Diagnostics) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Parallelism <= 0 {
		opts.Parallelism = DefaultParallelism
	}
	e := &Engine{opts: opts}
	lo := config.LoadOptions{
		Schemas: Schemas(opts.Registry),
		Vars:    opts.Vars,
		Getenv:  opts.Getenv,
		Environ: opts.Environ,
	}
	var guess chan early
	if opts.EarlyState {
		// Most configurations keep the state where the default puts it,
		// and the im1 block that says so is known only once every file is
		// parsed (0.2 s on one core for 7,000 sites): the read of the
		// default file starts now, and is kept if the block names it.
		guessPath, err := config.DefaultStatePath(opts.Dir)
		if err == nil {
			if _, err := os.Stat(guessPath); err == nil {
				guess = startEarly(guessPath, opts.Now)
			}
		}
		lo.Settled = func(st *config.Settings) {
			if st.PostgresDSN != "" {
				return // openState refuses it
			}
			if guess != nil && st.StatePath == guessPath {
				e.early, guess = guess, nil
				return
			}
			e.early = startEarly(st.StatePath, opts.Now)
		}
	}
	cfg, diags := config.Load(opts.Dir, lo)
	discardEarly(guess) // the im1 block named another file, or none was read
	e.cfg = cfg
	if diags.HasErrors() {
		e.dropEarly()
		// The engine is returned only so callers can render diagnostics
		// with source snippets; it must not be used to plan.
		return e, diags
	}
	st := cfg.Settings
	e.env = &providers.Env{
		Now:      opts.Now,
		Zone:     st.Zone,
		Dirs:     providers.Dirs{Config: cfg.Dir, Landing: st.Landing, Archive: st.Archive, Handoff: st.Handoff},
		Log:      opts.Log,
		Progress: opts.Progress,
		Getenv:   opts.Getenv,
		FileMode: st.FileMode,
		DirMode:  st.DirMode,

		PurgeWithdrawn: opts.PurgeWithdrawn,
		NoRefresh:      opts.NoRefresh,
		Applying:       opts.Operation == "apply",
	}
	return e, diags
}

// Config is the loaded configuration.
func (e *Engine) Config() *config.Config { return e.cfg }

// Store is the open state, nil before OpenState or when none exists yet.
func (e *Engine) Store() state.Store { return e.store }

// Meta is the state's lineage and serial as read.
func (e *Engine) Meta() state.Meta { return e.meta }

// OpenState opens the state: read-only for plans (a missing state reads as
// empty and is not created), read-write for apply (created when missing).
func (e *Engine) OpenState(ctx context.Context, write bool) error {
	return e.openState(ctx, write)
}

// OpenExistingState opens the state read-write without creating it: the
// state-editing commands must not make a fresh state of a new lineage.
func (e *Engine) OpenExistingState(ctx context.Context) error {
	if _, err := os.Stat(e.cfg.Settings.StatePath); err != nil {
		return fmt.Errorf("%w: %s does not exist (run `im1 init` or `im1 apply` first)", state.ErrNoState, e.cfg.Settings.StatePath)
	}
	return e.openState(ctx, true)
}

// readEarly opens the state read-only and reads its serial and then its
// resources.
func readEarly(path string, now func() time.Time) early {
	ctx := context.Background()
	s, err := state.OpenSQLite(ctx, path, state.Options{ReadOnly: true, Now: now})
	if err != nil {
		return early{err: err}
	}
	serial, err := s.Serial(ctx)
	if err != nil {
		s.Close()
		return early{err: err}
	}
	rs, err := s.Resources(ctx)
	if err != nil {
		s.Close()
		return early{err: err}
	}
	return early{store: s, serial: serial, rs: rs}
}

// startEarly starts readEarly on a goroutine of its own.
func startEarly(path string, now func() time.Time) chan early {
	ch := make(chan early, 1)
	go func() { ch <- readEarly(path, now) }()
	return ch
}

// discardEarly closes the store of an early read nobody adopted, once it
// is done; ch may be nil.
func discardEarly(ch chan early) {
	if ch == nil {
		return
	}
	go func() {
		if r := <-ch; r.store != nil {
			r.store.Close()
		}
	}()
}

// takeEarly waits for the early read, once; nil without one.
func (e *Engine) takeEarly() *early {
	if e.early == nil {
		return nil
	}
	r := <-e.early
	e.early = nil
	return &r
}

// dropEarly closes an early store nobody adopted.
func (e *Engine) dropEarly() {
	if r := e.takeEarly(); r != nil && r.store != nil {
		r.store.Close()
	}
}

func (e *Engine) openState(ctx context.Context, write bool) error {
	if r := e.takeEarly(); r != nil {
		switch {
		case write || r.err != nil:
			// Not what is asked for, or it failed: open as usual (which
			// reports the error, or finds no state, in its own words).
			if r.store != nil {
				r.store.Close()
			}
		default:
			meta, err := r.store.Meta(ctx)
			if err != nil {
				r.store.Close()
				return err
			}
			e.store, e.meta = r.store, meta
			e.env.Store = r.store
			e.earlyRes = r
			return nil
		}
	}
	if e.cfg.Settings.PostgresDSN != "" {
		// Never fall back to a private SQLite file: a team that configured
		// shared state would get one state and one lock per machine.
		return errors.New("im1 { postgres_dsn } is set, but this version of im1 has no PostgreSQL backend: remove it to keep state in the local SQLite file")
	}
	path := e.cfg.Settings.StatePath
	s, err := state.OpenSQLite(ctx, path, state.Options{ReadOnly: !write, Create: write, Now: e.opts.Now})
	if errors.Is(err, state.ErrNoState) && !write {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening state %s: %w", path, err)
	}
	meta, err := s.Meta(ctx)
	if err != nil {
		s.Close()
		return err
	}
	e.store, e.meta = s, meta
	e.env.Store = s
	return nil
}

// Close releases the state
// and lets providers close what they held for the run (one SSH connection
// per site per run, reused by every resource that needs it).
func (e *Engine) Close() error {
	e.dropEarly()
	seen := map[io.Closer]bool{}
	for _, p := range e.opts.Registry {
		if c, ok := p.(io.Closer); ok && !seen[c] {
			seen[c] = true
			_ = c.Close()
		}
	}
	if e.store == nil {
		return nil
	}
	err := e.store.Close()
	e.store = nil
	return err
}

func noCtx() context.Context { return context.Background() }

// SetStream makes Plan hand each change to fn as soon as it is planned
// (see Options.Stream).
func (e *Engine) SetStream(fn func(*Change) error) { e.opts.Stream = fn }
