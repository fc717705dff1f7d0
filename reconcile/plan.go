package reconcile

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/config"
	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/schema"
	"github.com/im1dev/im1/state"
)

// Plan is the difference between configuration, state and the world.
type Plan struct {
	Lineage     string
	Serial      int64
	ConfigHash  string
	Created     time.Time
	Targets     []string
	RefreshOnly bool
	Changes     []*Change
	// Drift is what refresh found contradicting state.
	Drift hcl.Diagnostics
	// Diagnostics are warnings (and errors, when Errored) from planning.
	Diagnostics hcl.Diagnostics
}

// Change is the plan of one resource instance.
type Change struct {
	Addr      string
	Type      string
	Action    providers.Action
	Reason    string
	Before    cty.Value // cty.NilVal when not in state
	After     cty.Value // cty.NilVal when destroyed
	Sensitive []string
	Instances []providers.InstanceChange
	// Deps are what this change must wait for: instance addresses, or
	// resource addresses standing for every instance of the resource (an
	// extract per site over 7,000 sites must not list 7,000 sites each).
	Deps []string

	schema *schema.Block
	resp   *providers.PlanResponse
	// streamed is set once Options.Stream has written the change: its
	// instances are dropped (so a plan's memory does not grow with the
	// number of expected deliveries) and work remembers whether any was
	// actionable.
	streamed, work bool
	// allowed, when set (apply of a saved plan), is the instance actions
	// the reviewed plan showed; nothing else is applied.
	allowed map[string]providers.InstanceAction
}

// Errored reports whether planning failed; such a plan cannot be applied.
func (p *Plan) Errored() bool { return p.Diagnostics.HasErrors() }

// Actionable reports whether an instance change is work apply will do.
func Actionable(ic providers.InstanceChange) bool { return ic.Actionable() }

// HasWork reports whether apply has anything to do for this change.
func (c *Change) HasWork() bool {
	if c.Action != providers.NoOp {
		return true
	}
	if c.streamed {
		return c.work
	}
	for _, ic := range c.Instances {
		if Actionable(ic) {
			return true
		}
	}
	return false
}

// Empty reports a plan with nothing for apply to do (settled states and
// drift warnings do not count).
func (p *Plan) Empty() bool {
	for _, c := range p.Changes {
		if c.HasWork() {
			return false
		}
	}
	return true
}

// planner holds the evaluation scope while planning.
type planner struct {
	e         *Engine
	values    map[string]cty.Value // instance address -> value for references
	instances map[string][]string  // resource address -> instance addresses
	keys      map[string]map[string]string
	failed    map[string]bool
}

func (pl *planner) lookup(addr string) cty.Value {
	r := pl.e.cfg.Resource(addr)
	if r == nil || pl.failed[addr] {
		return cty.DynamicVal
	}
	insts, ok := pl.instances[addr]
	if !ok {
		return cty.DynamicVal
	}
	if r.ForEach == nil {
		if len(insts) == 0 {
			return cty.DynamicVal
		}
		return pl.values[insts[0]]
	}
	m := map[string]cty.Value{}
	for _, ia := range insts {
		m[pl.keys[addr][ia]] = pl.values[ia]
	}
	return cty.ObjectVal(m)
}

// Plan computes the plan. The state must have been opened (read-only is enough).
func (e *Engine) Plan(ctx context.Context) (*Plan, hcl.Diagnostics) {
	plan := &Plan{
		Lineage:     e.meta.Lineage,
		Serial:      e.meta.Serial,
		ConfigHash:  e.cfg.Hash,
		Created:     e.opts.Now().UTC(),
		Targets:     e.opts.Targets,
		RefreshOnly: e.opts.RefreshOnly,
	}
	var diags hcl.Diagnostics
	var pre []state.Resource
	if e.store != nil {
		// Reading the serial lets the store's generation notice another
		// process's commits since this engine last looked, so that what
		// providers cached from state is read again.
		serial, err := e.store.Serial(ctx)
		if err != nil {
			return nil, diags.Append(errDiag("Reading state failed", err.Error()))
		}
		// The resources read during Load serve if nothing was committed
		// since (the serial read before them is still the serial).
		if r := e.earlyRes; r != nil {
			if r.serial == serial {
				pre = r.rs
			}
			e.earlyRes = nil
		}
	}
	// State is read while the first block is evaluated: evaluating needs
	// no state, and reading thousands of resources is a single-threaded
	// SQLite scan.
	read := e.readPriors(ctx, pre)
	var priors map[string]*state.Resource
	var priorDeps map[string][]string
	pl := &planner{e: e, values: map[string]cty.Value{}, instances: map[string][]string{}, keys: map[string]map[string]string{}, failed: map[string]bool{}}
	for _, r := range e.cfg.Order() {
		if err := ctx.Err(); err != nil {
			return nil, diags.Append(errDiag("Planning interrupted", err.Error()))
		}
		prov := e.opts.Registry[r.Type]
		insts, d := e.cfg.Eval(r, pl.lookup)
		if priors == nil {
			var err error
			if priors, priorDeps, err = read(); err != nil {
				return nil, diags.Append(errDiag("Reading state failed", err.Error()))
			}
		}
		diags = append(diags, d...)
		if d.HasErrors() {
			pl.failed[r.Addr()] = true
			continue
		}
		pl.keys[r.Addr()] = map[string]string{}
		// Instances of one block depend only on earlier blocks, so they are
		// planned concurrently (bounded like apply): at national scale a
		// block has thousands of sites whose refresh waits on the network.
		jobs := make([]planJob, len(insts))
		for i, inst := range insts {
			pl.instances[r.Addr()] = append(pl.instances[r.Addr()], inst.Addr)
			pl.keys[r.Addr()][inst.Addr] = inst.Key
			jobs[i].ok = true
			if sr := priors[inst.Addr]; sr != nil {
				delete(priors, inst.Addr)
				if p := samePrior(sr, inst.Value); p != nil {
					jobs[i].prior = p
					continue
				}
				p, err := decodePrior(sr, r.Schema)
				if err != nil {
					diags = diags.Append(errDiag("Reading state failed", err.Error()))
					jobs[i].ok = false
					continue
				}
				jobs[i].prior = p
			}
		}
		e.planAll(len(insts), func(i int) {
			if jobs[i].ok {
				jobs[i].ch, jobs[i].diags, jobs[i].drift = e.planOne(ctx, prov, r.Schema, insts[i].Addr, r.Type, insts[i].Value, jobs[i].prior)
			}
		})
		for i, inst := range insts {
			j := &jobs[i]
			if !j.ok {
				continue
			}
			diags = append(diags, j.diags...)
			plan.Drift = append(plan.Drift, j.drift...)
			ch := j.ch
			if ch == nil {
				pl.failed[r.Addr()] = true
				pl.values[inst.Addr] = cty.DynamicVal
				continue
			}
			pl.values[inst.Addr] = ch.After
			if ch.After == cty.NilVal {
				pl.values[inst.Addr] = cty.DynamicVal
			}
			ch.Deps = resourceDeps(r.Refs, pl.instances)
			if err := e.stream(ch); err != nil {
				return nil, diags.Append(errDiag("Writing the plan failed", err.Error()))
			}
			plan.Changes = append(plan.Changes, ch)
		}
	}
	if priors == nil { // nothing configured
		var err error
		if priors, priorDeps, err = read(); err != nil {
			return nil, diags.Append(errDiag("Reading state failed", err.Error()))
		}
	}
	// Objects in state that left the configuration are destroyed after
	// whatever depended on them has been changed.
	gone := make([]string, 0, len(priors))
	for addr := range priors {
		gone = append(gone, addr)
	}
	sort.Strings(gone)
	for _, addr := range gone {
		sr := priors[addr]
		prov, ok := e.opts.Registry[sr.Type]
		if !ok {
			diags = diags.Append(errDiag("Unknown resource type in state",
				fmt.Sprintf("State holds %s of type %q, which this version of im1 does not know. Remove it with `im1 state rm %s` if it is obsolete.", addr, sr.Type, addr)))
			continue
		}
		prior, err := decodePrior(sr, prov.Schema())
		if err != nil {
			diags = diags.Append(errDiag("Reading state failed", err.Error()))
			continue
		}
		ch, d, drift := e.planOne(ctx, prov, prov.Schema(), addr, sr.Type, cty.NilVal, prior)
		diags = append(diags, d...)
		plan.Drift = append(plan.Drift, drift...)
		if ch == nil {
			continue
		}
		plan.Changes = append(plan.Changes, ch)
	}
	// A destroy waits for every change of an object that depended on it.
	for _, ch := range plan.Changes {
		if ch.Action != providers.Destroy {
			continue
		}
		for _, other := range plan.Changes {
			if other == ch {
				continue
			}
			if o := priorDeps[other.Addr]; contains(o, ch.Addr) || contains(o, resourceOf(ch.Addr)) {
				ch.Deps = append(ch.Deps, other.Addr)
			}
		}
	}
	if len(e.opts.Targets) > 0 {
		plan.Changes = targetClosure(plan.Changes, e.opts.Targets)
	}
	// Destroys are streamed last, once their dependencies are known.
	for _, ch := range plan.Changes {
		if err := e.stream(ch); err != nil {
			return nil, diags.Append(errDiag("Writing the plan failed", err.Error()))
		}
	}
	sort.SliceStable(plan.Changes, func(i, j int) bool { return plan.Changes[i].Addr < plan.Changes[j].Addr })
	plan.Diagnostics = diags
	return plan, diags
}

// readPriors starts reading every resource in state (unless pre holds
// them already) and returns a function that waits for them, by address,
// with their dependencies.
func (e *Engine) readPriors(ctx context.Context, pre []state.Resource) func() (map[string]*state.Resource, map[string][]string, error) {
	type result struct {
		rs  []state.Resource
		err error
	}
	ch := make(chan result, 1)
	switch {
	case e.store == nil:
		ch <- result{}
	case pre != nil:
		ch <- result{rs: pre}
	default:
		go func() {
			rs, err := e.store.Resources(ctx)
			ch <- result{rs, err}
		}()
	}
	return func() (map[string]*state.Resource, map[string][]string, error) {
		res := <-ch
		if res.err != nil {
			return nil, nil, res.err
		}
		priors := make(map[string]*state.Resource, len(res.rs))
		deps := make(map[string][]string, len(res.rs))
		for i := range res.rs {
			priors[res.rs[i].Addr] = &res.rs[i]
			deps[res.rs[i].Addr] = res.rs[i].Deps
		}
		return priors, deps, nil
	}
}

// planJob is one instance's planning, run by planAll.
type planJob struct {
	ok    bool
	prior *providers.Prior
	ch    *Change
	diags hcl.Diagnostics
	drift hcl.Diagnostics
}

// planAll runs fn(0..n-1) on at most Parallelism goroutines. Refresh waits
// on the network, so it uses them all; without refresh planning is CPU
// work, so no more workers than CPUs. (Once instance planning no longer
// queried SQLite per instance, two workers on 2 vCPUs planned 7,000 sites
// in 0.8x the time of one; before, with a query or two per instance,
// they took 1.2-1.5x as long.)
func (e *Engine) planAll(n int, fn func(int)) {
	workers := min(e.opts.Parallelism, n)
	if e.opts.NoRefresh {
		workers = min(workers, runtime.GOMAXPROCS(0))
	}
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// planOne refreshes and plans one instance; it returns what refresh found
// contradicting state separately, as drift. It is safe to run concurrently.
func (e *Engine) planOne(ctx context.Context, prov providers.Resource, s *schema.Block, addr, typ string, cfgVal cty.Value, prior *providers.Prior) (*Change, hcl.Diagnostics, hcl.Diagnostics) {
	var diags, drift hcl.Diagnostics
	if prior != nil && !e.opts.NoRefresh {
		rr, err := prov.Refresh(ctx, &providers.RefreshRequest{Addr: addr, Config: cfgVal, Prior: prior, Env: e.env})
		if err != nil {
			return nil, diags.Append(errDiag("Refreshing "+addr+" failed", err.Error())), nil
		}
		drift = subjectAddr(rr.Drift, addr)
		if rr.Prior != nil {
			prior = rr.Prior
		}
	}
	resp, err := prov.Plan(ctx, &providers.PlanRequest{Addr: addr, Config: cfgVal, Prior: prior, Env: e.env, RefreshOnly: e.opts.RefreshOnly})
	if err != nil {
		return nil, diags.Append(errDiag("Planning "+addr+" failed", err.Error())), drift
	}
	diags = append(diags, subjectAddr(resp.Diagnostics, addr)...)
	ch := &Change{Addr: addr, Type: typ, Action: resp.Action, Reason: resp.Reason, Instances: resp.Instances, schema: s, resp: resp}
	if ch.Action == "" {
		ch.Action = providers.NoOp
	}
	if prior != nil {
		ch.Before = withAddress(prior.Value, addr)
	}
	if ch.Action != providers.Destroy {
		after := resp.Planned
		if after == cty.NilVal {
			after = cfgVal
		}
		ch.After = withAddress(unknownComputed(s, after, ch.Action), addr)
	}
	if e.opts.RefreshOnly && ch.Action != providers.NoOp {
		// Refresh-only never changes the world; it reports.
		ch.Action, ch.Reason, ch.Instances = providers.NoOp, "", nil
		ch.After = ch.Before
	}
	ch.Sensitive = s.SensitivePaths()
	return ch, diags, drift
}

// stream hands a planned change to Options.Stream (plan -json writes it
// at once) and drops its instances. With -target nothing is streamed:
// what is kept is known only when planning ends, and the set is small.
func (e *Engine) stream(ch *Change) error {
	if e.opts.Stream == nil || len(e.opts.Targets) > 0 || ch.streamed {
		return nil
	}
	if err := e.opts.Stream(ch); err != nil {
		return err
	}
	for _, ic := range ch.Instances {
		ch.work = ch.work || Actionable(ic)
	}
	ch.streamed, ch.Instances = true, nil
	return nil
}

// resourceDeps lists the referenced resources that have instances, by
// resource address.
func resourceDeps(refs []config.Ref, instances map[string][]string) []string {
	var deps []string
	for _, ref := range refs {
		if len(instances[ref.Addr]) > 0 && !slices.Contains(deps, ref.Addr) {
			deps = append(deps, ref.Addr)
		}
	}
	return deps
}

// targetClosure keeps the targeted changes and everything they depend on.
func targetClosure(changes []*Change, targets []string) []*Change {
	byAddr := map[string]*Change{}
	for _, c := range changes {
		byAddr[c.Addr] = c
	}
	byResource := map[string][]*Change{}
	for _, c := range changes {
		byResource[resourceOf(c.Addr)] = append(byResource[resourceOf(c.Addr)], c)
	}
	keep := map[string]bool{}
	var visit func(string)
	visit = func(a string) {
		if keep[a] {
			return
		}
		keep[a] = true
		if c := byAddr[a]; c != nil {
			for _, d := range c.Deps {
				visit(d)
			}
		}
		for _, c := range byResource[a] { // a resource-level dependency
			visit(c.Addr)
		}
	}
	for _, c := range changes {
		for _, t := range targets {
			if c.Addr == t || resourceOf(c.Addr) == t {
				visit(c.Addr)
			}
		}
	}
	var out []*Change
	for _, c := range changes {
		if keep[c.Addr] {
			out = append(out, c)
		}
	}
	return out
}

// resourceOf strips an instance key: extract.core["A81001"] -> extract.core.
func resourceOf(addr string) string {
	if i := strings.Index(addr, "["); i >= 0 {
		return addr[:i]
	}
	return addr
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func errDiag(summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail}
}

// subjectAddr prefixes provider diagnostics without a source range with the
// address they concern, so the reader knows which object spoke.
func subjectAddr(diags hcl.Diagnostics, addr string) hcl.Diagnostics {
	for _, d := range diags {
		if d.Subject == nil && !strings.HasPrefix(d.Summary, addr) {
			d.Summary = addr + ": " + d.Summary
		}
	}
	return diags
}

// instanceKeyOf returns the for_each key of an instance address.
// It undoes config.InstanceAddr's quoting, so any key round-trips.
func instanceKeyOf(addr string) string {
	i := strings.Index(addr, "[")
	if i < 0 {
		return ""
	}
	if k, err := strconv.Unquote(strings.TrimSuffix(addr[i+1:], "]")); err == nil {
		return k
	}
	return strings.Trim(addr[i+1:], `"]`)
}
