package reconcile

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/record"
	"github.com/im1dev/im1/schema"
	"github.com/im1dev/im1/state"
)

var update = flag.Bool("update", false, "rewrite golden files")

// thing is a test resource type: it records apply order and concurrency,
// fails when value is "fail", and computes an id known only after apply.
type thing struct {
	providers.NoRefresh
	mu      sync.Mutex
	applied []string
	running atomic.Int32
	peak    atomic.Int32
	delay   time.Duration
}

var thingSchema = &schema.Block{
	Doc:     "test",
	ForEach: true,
	Attributes: []*schema.Attribute{
		{Name: "value", Type: cty.String, Required: true},
		{Name: "needs", Type: cty.List(cty.String)},
		{Name: "id", Type: cty.String, Computed: true},
	},
}

func (t *thing) Schema() *schema.Block { return thingSchema }

func (t *thing) Plan(_ context.Context, req *providers.PlanRequest) (*providers.PlanResponse, error) {
	resp := record.Plan(thingSchema, req.Config, req.Prior)
	if resp.Action == providers.NoOp && req.Prior != nil {
		resp.Planned = req.Prior.Value
	}
	if (resp.Action == providers.Update) && req.Prior != nil {
		resp.Planned = providers.SetAttr(req.Config, "id", providers.GetAttr(req.Prior.Value, "id"))
	}
	return resp, nil
}

func (t *thing) Apply(_ context.Context, req *providers.ApplyRequest) (*providers.ApplyResponse, error) {
	n := t.running.Add(1)
	defer t.running.Add(-1)
	for {
		p := t.peak.Load()
		if n <= p || t.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(t.delay)
	t.mu.Lock()
	t.applied = append(t.applied, req.Addr)
	t.mu.Unlock()
	if req.Config == cty.NilVal {
		return &providers.ApplyResponse{}, nil
	}
	if !req.Config.IsWhollyKnown() {
		return nil, errors.New("config not known at apply")
	}
	if providers.String(req.Config, "value") == "fail" {
		return nil, errors.New("boom")
	}
	v := providers.SetAttr(req.Config, "id", cty.StringVal("id-"+providers.String(req.Config, "value")))
	return &providers.ApplyResponse{State: &providers.Prior{Value: v}}, nil
}

type fixture struct {
	t   *testing.T
	dir string
	th  *thing
}

func newFixture(t *testing.T, hcl string) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, dir: dir, th: &thing{}}
	f.write(hcl)
	return f
}

func (f *fixture) write(src string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "main.im1.hcl"), []byte(src), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) engine(opts Options) *Engine {
	f.t.Helper()
	opts.Dir = f.dir
	opts.Registry = providers.Registry{
		"thing":        f.th,
		"organisation": &record.Resource{Block: record.Organisation, Fill: record.FillOrganisation},
	}
	opts.Now = func() time.Time { return time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC) }
	e, diags := Load(opts)
	if diags.HasErrors() {
		f.t.Fatalf("load: %s", diags.Error())
	}
	return e
}

func (f *fixture) plan(opts Options) (*Engine, *Plan) {
	f.t.Helper()
	e := f.engine(opts)
	if err := e.OpenState(context.Background(), false); err != nil {
		f.t.Fatal(err)
	}
	p, diags := e.Plan(context.Background())
	if diags.HasErrors() {
		f.t.Fatalf("plan: %s", diags.Error())
	}
	return e, p
}

func (f *fixture) apply(opts Options) (*ApplyResult, hcl.Diagnostics) {
	f.t.Helper()
	ctx := context.Background()
	e := f.engine(opts)
	if err := e.OpenState(ctx, true); err != nil {
		f.t.Fatal(err)
	}
	defer e.Close()
	id, err := e.Lock(ctx, "apply")
	if err != nil {
		f.t.Fatal(err)
	}
	defer e.Unlock(ctx, id)
	p, diags := e.Plan(ctx)
	if diags.HasErrors() {
		f.t.Fatalf("plan: %s", diags.Error())
	}
	return e.Apply(ctx, p, "test", nil)
}

func actions(p *Plan) map[string]providers.Action {
	out := map[string]providers.Action{}
	for _, c := range p.Changes {
		out[c.Addr] = c.Action
	}
	return out
}

const chain = `
thing "a" { value = "a" }
thing "b" {
  value = "b"
  needs = [thing.a.id]
}
thing "c" {
  value = "c"
  needs = [thing.b.id]
}
thing "solo" { value = "solo" }
`

func TestPlanApplyConverges(t *testing.T) {
	f := newFixture(t, chain)
	e, p := f.plan(Options{})
	e.Close()
	want := map[string]providers.Action{"thing.a": providers.Create, "thing.b": providers.Create, "thing.c": providers.Create, "thing.solo": providers.Create}
	if got := actions(p); !equalActions(got, want) {
		t.Fatalf("actions %v, want %v", got, want)
	}
	// b's needs depend on a's id, which only apply knows.
	doc := p.Document()
	for _, rc := range doc.ResourceChanges {
		if rc.Address == "thing.b" && !strings.Contains(strings.Join(rc.AfterUnknown, ","), "needs") {
			t.Errorf("thing.b needs should be unknown at plan, got unknown=%v", rc.AfterUnknown)
		}
	}
	res, diags := f.apply(Options{})
	if diags.HasErrors() || res.Added != 4 {
		t.Fatalf("apply: %v %+v", diags, res)
	}
	// Dependencies applied before dependents.
	idx := map[string]int{}
	for i, a := range f.th.applied {
		idx[a] = i
	}
	if !(idx["thing.a"] < idx["thing.b"] && idx["thing.b"] < idx["thing.c"]) {
		t.Errorf("apply order %v", f.th.applied)
	}
	e, p = f.plan(Options{})
	defer e.Close()
	if !p.Empty() {
		t.Errorf("plan after apply not empty: %v", actions(p))
	}
	if e.Meta().Serial == 0 || e.Meta().Lineage == "" {
		t.Errorf("meta %+v", e.Meta())
	}
	// The computed id flowed into the dependent's state.
	r, err := e.Store().Resource(context.Background(), "thing.b")
	if err != nil || r == nil || !bytes.Contains(r.Attrs, []byte(`"id-a"`)) {
		t.Errorf("thing.b state %s %v", r.Attrs, err)
	}
}

func equalActions(a, b map[string]providers.Action) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestApplySkipsDependentsOfFailure(t *testing.T) {
	f := newFixture(t, strings.Replace(chain, `thing "a" { value = "a" }`, `thing "a" { value = "fail" }`, 1))
	res, diags := f.apply(Options{})
	if !diags.HasErrors() {
		t.Fatal("want an error")
	}
	if res.Failed != 1 || res.Skipped != 2 || res.Done != 1 {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(diags.Error(), "thing.a: create failed") || !strings.Contains(diags.Error(), "boom") {
		t.Errorf("diags %s", diags.Error())
	}
	// The independent one was applied and committed; the rest converge later.
	f.write(chain)
	e, p := f.plan(Options{})
	defer e.Close()
	got := actions(p)
	if got["thing.solo"] != providers.NoOp || got["thing.a"] != providers.Create || got["thing.c"] != providers.Create {
		t.Errorf("after failure: %v", got)
	}
	audit, _ := e.Store().Audit(context.Background())
	if len(audit) < 2 || audit[len(audit)-1].Outcome != "error" {
		t.Errorf("audit %+v", audit)
	}
}

func TestApplyParallelismBound(t *testing.T) {
	var b strings.Builder
	for _, n := range []string{"p1", "p2", "p3", "p4", "p5", "p6"} {
		b.WriteString(`thing "` + n + `" { value = "` + n + `" }` + "\n")
	}
	for _, par := range []int{1, 3} {
		f := newFixture(t, b.String())
		f.th.delay = 30 * time.Millisecond
		if _, diags := f.apply(Options{Parallelism: par}); diags.HasErrors() {
			t.Fatal(diags)
		}
		if peak := int(f.th.peak.Load()); peak > par || (par > 1 && peak < 2) {
			t.Errorf("parallelism %d: peak concurrency %d", par, peak)
		}
	}
}

func TestTargetKeepsDependencies(t *testing.T) {
	f := newFixture(t, chain)
	e, p := f.plan(Options{Targets: []string{"thing.b"}})
	e.Close()
	got := actions(p)
	if len(got) != 2 || got["thing.a"] != providers.Create || got["thing.b"] != providers.Create {
		t.Errorf("targeted plan %v", got)
	}
}

func TestDestroyAfterDependents(t *testing.T) {
	f := newFixture(t, chain)
	if _, diags := f.apply(Options{}); diags.HasErrors() {
		t.Fatal(diags)
	}
	f.th.applied = nil
	f.write(`thing "solo" { value = "solo" }`)
	e, p := f.plan(Options{})
	e.Close()
	for _, a := range []string{"thing.a", "thing.b", "thing.c"} {
		if actions(p)[a] != providers.Destroy {
			t.Fatalf("%s: %v", a, actions(p))
		}
	}
	if _, diags := f.apply(Options{}); diags.HasErrors() {
		t.Fatal(diags)
	}
	idx := map[string]int{}
	for i, a := range f.th.applied {
		idx[a] = i
	}
	if !(idx["thing.c"] < idx["thing.b"] && idx["thing.b"] < idx["thing.a"]) {
		t.Errorf("destroy order %v", f.th.applied)
	}
}

func TestSavedPlanStaleness(t *testing.T) {
	f := newFixture(t, chain)
	e, p := f.plan(Options{})
	doc := p.Document()
	cfg := e.Config()
	e.Close()
	path := filepath.Join(t.TempDir(), "p.json")
	if err := WritePlanFile(path, doc); err != nil {
		t.Fatal(err)
	}
	saved, err := ReadPlanFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSaved(saved, state.Meta{}, cfg); err != nil {
		t.Fatalf("fresh plan refused: %v", err)
	}
	if err := CheckSaved(saved, state.Meta{Serial: 3}, cfg); !errors.Is(err, ErrStalePlan) {
		t.Errorf("moved serial: %v", err)
	}
	saved.Lineage = "other"
	if err := CheckSaved(saved, state.Meta{Lineage: "mine"}, cfg); !errors.Is(err, state.ErrLineage) {
		t.Errorf("other lineage: %v", err)
	}
}

// TestRenderGolden pins the human plan output.
func TestRenderGolden(t *testing.T) {
	f := newFixture(t, chain+`
organisation "A81001" {
  name     = "Densham Surgery"
  supplier = "emis"
}
`)
	e, p := f.plan(Options{})
	e.Close()
	doc := p.Document()
	doc.ResourceChanges = append(doc.ResourceChanges, ResourceChange{
		Address: `extract.core`, Type: "extract", Name: "core", Action: providers.NoOp,
		Instances: []InstanceDoc{
			{Key: "2026-11-17", Action: providers.Landed},
			{Key: "2026-11-18", Action: providers.Repair, Reason: "landed file missing"},
			{Key: "2026-11-19", Action: providers.Fetch, Reason: "delivered, not yet landed"},
			{Key: "2026-11-20", Action: providers.Fetch, Reason: "delivered, not yet landed"},
			{Key: "2026-11-21", Action: providers.Wait, Reason: "not yet due"},
		},
	})
	doc.Summary = summarise(doc)
	var buf bytes.Buffer
	RenderPlan(&buf, doc, RenderOptions{})
	golden(t, "plan_create.golden", buf.Bytes())
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestForEachDependencies: an instance that refers to a for_each resource
// depends on the resource as a whole (one entry, not one per instance, so
// 7,000 extracts over 7,000 sites stay linear), waits for every instance
// of it, is skipped when any fails, and -target pulls them all in.
func TestForEachDependencies(t *testing.T) {
	const src = `
thing "site" {
  for_each = toset(["x", "y", "z"])
  value    = each.key
}
thing "per" {
  for_each = thing.site
  value    = "per-${each.key}"
  needs    = [each.value.id]
}
thing "all" {
  value = "all"
  needs = [for s in thing.site : s.id]
}
`
	f := newFixture(t, src)
	f.th.delay = 10 * time.Millisecond
	e, p := f.plan(Options{})
	e.Close()
	for _, c := range p.Changes {
		if strings.HasPrefix(c.Addr, "thing.per") || c.Addr == "thing.all" {
			if len(c.Deps) != 1 || c.Deps[0] != "thing.site" {
				t.Errorf("%s depends on %v; want [thing.site]", c.Addr, c.Deps)
			}
		}
	}
	e, p = f.plan(Options{Targets: []string{`thing.per["y"]`}})
	e.Close()
	if got := actions(p); len(got) != 4 {
		t.Errorf("-target thing.per[\"y\"] kept %v; want it and the three sites", got)
	}
	if _, diags := f.apply(Options{Parallelism: 10}); diags.HasErrors() {
		t.Fatal(diags)
	}
	pos := map[string]int{}
	for i, a := range f.th.applied {
		pos[a] = i
	}
	for _, site := range []string{`thing.site["x"]`, `thing.site["y"]`, `thing.site["z"]`} {
		for _, dep := range []string{`thing.per["x"]`, `thing.per["y"]`, `thing.per["z"]`, "thing.all"} {
			if pos[site] > pos[dep] {
				t.Errorf("%s applied before %s: %v", dep, site, f.th.applied)
			}
		}
	}

	g := newFixture(t, strings.Replace(src, `value    = each.key`, `value    = each.key == "y" ? "fail" : each.key`, 1))
	res, diags := g.apply(Options{Parallelism: 10})
	if !diags.HasErrors() || res.Failed != 1 || res.Done != 2 || res.Skipped != 4 {
		t.Errorf("one site failing: %+v, %v; want 1 failed, 2 done, 4 skipped", res, diags)
	}
}

// TestSummaryLine: fetches, repairs and blocks are always counted; the
// rarer work only when there is some.
func TestSummaryLine(t *testing.T) {
	for _, tc := range []struct {
		extracts map[string]int
		want     string
	}{
		{map[string]int{}, "Plan: 0 to add, 1 to change, 0 to destroy. Extracts: 0 to fetch, 0 to repair, 0 blocked.\n"},
		{map[string]int{"fetch": 2, "request": 1000, "purge": 3}, "Plan: 0 to add, 1 to change, 0 to destroy. Extracts: 2 to fetch, 0 to repair, 0 blocked, 1000 to request again, 3 to purge.\n"},
		{map[string]int{"expire": 5, "blocked": 1}, "Plan: 0 to add, 1 to change, 0 to destroy. Extracts: 0 to fetch, 0 to repair, 1 blocked, 5 to expire.\n"},
	} {
		var buf bytes.Buffer
		summaryLine(&buf, &Doc{Summary: Summary{Change: 1, Extracts: tc.extracts}})
		if got := strings.TrimPrefix(buf.String(), "\n"); got != tc.want {
			t.Errorf("summary:\n got %q\nwant %q", got, tc.want)
		}
	}
}

// TestEarlyStateGuess: the early read starts on the default state file
// before the configuration is parsed. When the im1 block names another
// file, the plan is made against that one, not the guess; back at the
// default, the guess serves.
func TestEarlyStateGuess(t *testing.T) {
	f := newFixture(t, chain)
	if _, diags := f.apply(Options{}); diags.HasErrors() {
		t.Fatal(diags)
	}
	f.write("im1 {\n  state_path = \"elsewhere.db\"\n}\n" + chain)
	e, p := f.plan(Options{EarlyState: true})
	if got := actions(p); got["thing.a"] != providers.Create || len(got) != 4 {
		t.Errorf("plan against a state of its own (none yet): %v, want 4 to create", got)
	}
	e.Close()
	f.write(chain)
	e, p = f.plan(Options{EarlyState: true})
	if !p.Empty() {
		t.Errorf("plan against the default state: %v, want no changes", actions(p))
	}
	e.Close()
}

// TestEarlyState: a plan that reads state during Load plans exactly as one
// that does not; a commit between Load and Plan is not missed; no state
// yet, and a read-write open after it, work as without it.
func TestEarlyState(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chain)
	// No state yet.
	e, p := f.plan(Options{EarlyState: true})
	if got := actions(p); got["thing.a"] != providers.Create || len(got) != 4 {
		t.Fatalf("plan without state: %v", got)
	}
	e.Close()
	if _, diags := f.apply(Options{}); diags.HasErrors() {
		t.Fatal(diags)
	}
	// Settled state: the same (empty) plan either way.
	for _, early := range []bool{false, true} {
		e, p := f.plan(Options{EarlyState: early})
		if !p.Empty() {
			t.Errorf("early %v: plan after apply is not empty: %v", early, actions(p))
		}
		e.Close()
	}
	// Read during Load, then another handle commits before Plan.
	f.write(strings.Replace(chain, `thing "solo" { value = "solo" }`, `thing "solo" { value = "solo2" }`, 1))
	e = f.engine(Options{EarlyState: true})
	if err := e.OpenState(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, diags := f.apply(Options{}); diags.HasErrors() {
		t.Fatal(diags)
	}
	p, diags := e.Plan(ctx)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !p.Empty() {
		t.Errorf("a plan after another handle applied the change still shows it: %v", actions(p))
	}
	e.Close()
	// Loaded with EarlyState, opened read-write: the early store is let go.
	e = f.engine(Options{EarlyState: true})
	if err := e.OpenState(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Lock(ctx, "apply"); err != nil {
		t.Fatalf("read-write open after an early read: %v", err)
	}
	e.Close()
}
