// Package extract is the `extract` resource: it binds a source (an EMIS
// site or a SystmOne strategic report), a dataset and a schedule, expands
// into one instance per expected delivery, and hands the supplier-facing
// work to the source's provider.
package extract

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/record"
	"github.com/im1dev/im1/schema"
	"github.com/im1dev/im1/state"
)

// Request is one extract's evaluated configuration.
type Request struct {
	Addr     string
	Source   cty.Value // the emis_site / systmone_strategic_report object
	Dataset  cty.Value
	Schedule Schedule
	Env      *providers.Env
	// SourceReady is false until the supplier has proven the source's setup
	// (a delivery decrypted with the handed-off key, a delivery matching the
	// report sheet): missing deliveries before that await the supplier, and
	// no re-extract is requested.
	SourceReady bool
	// Applying is set for ApplyExtract: apply always looks at the world,
	// whatever plan's -refresh said.
	Applying bool
	// Ends is when extraction must stop: the dataset's IG approval or the
	// permission of every organisation the source delivers, whichever ends
	// first (zero: it does not end). Periods after it are withdrawn.
	Ends Ending

	// digests and handoffs (by source) are read once for all extracts by
	// a plan without refresh.
	digests  state.Digests
	handoffs map[string][]state.Handoff
}

// Ending says when and why extraction stops.
type Ending struct {
	Day    time.Time // last day covered; periods after it are withdrawn
	Reason string    // "IG approval IG-2026-014 ended 2026-11-30"
}

// Source is what a supplier provider implements for extracts.
type Source interface {
	// PlanExtract reads state and what refresh observed, and returns one
	// change per expected delivery, in key order, plus findings.
	PlanExtract(ctx context.Context, req *Request) ([]providers.InstanceChange, hcl.Diagnostics, error)
	// ApplyExtract carries out the actionable changes.
	ApplyExtract(ctx context.Context, req *Request, changes []providers.InstanceChange) hcl.Diagnostics
}

// Resource is the extract resource type.
type Resource struct {
	providers.NoRefresh
	// Sources maps a source block type (emis_site) to its provider.
	Sources map[string]Source

	mu    sync.Mutex
	facts *stateFacts // cached per state generation
}

// stateFacts returns the run's view of the resources in state, re-read
// only when the state moved (its generation).
func (r *Resource) stateFacts(ctx context.Context, st state.Store) (*stateFacts, error) {
	gen := st.Generation()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.facts != nil && r.facts.store == st && r.facts.gen == gen {
		return r.facts, nil
	}
	f, err := readFacts(ctx, st)
	if err != nil {
		return nil, err
	}
	f.store, f.gen = st, gen
	r.facts = f
	return f, nil
}

// Schema is the extract block.
func (r *Resource) Schema() *schema.Block { return record.Extract }

func (r *Resource) request(addr string, v cty.Value, env *providers.Env) (*Request, Source, error) {
	src := providers.GetAttr(v, "source")
	srcAddr := providers.String(src, "address")
	if srcAddr == "" {
		return nil, nil, fmt.Errorf("source must be a reference to an emis_site or systmone_strategic_report block")
	}
	typ := strings.SplitN(srcAddr, ".", 2)[0]
	s, ok := r.Sources[typ]
	if !ok {
		return nil, nil, fmt.Errorf("source %s is a %s; an extract's source must be an emis_site or a systmone_strategic_report", srcAddr, typ)
	}
	zone := env.Zone
	if zone == nil {
		zone = time.UTC
	}
	sched, err := ParseSchedule(providers.GetAttr(v, "schedule"), zone)
	if err != nil {
		return nil, nil, err
	}
	req := &Request{Addr: addr, Source: src, Dataset: providers.GetAttr(v, "dataset"), Schedule: sched, Env: env}
	facts := &stateFacts{}
	if env.Store != nil {
		f, err := r.stateFacts(context.Background(), env.Store)
		if err != nil {
			return nil, nil, err
		}
		facts = f
		req.SourceReady = facts.status[srcAddr] == state.StatusReady
		if env.NoRefresh {
			if req.digests, req.handoffs, err = facts.bulk(env.Store); err != nil {
				return nil, nil, err
			}
		}
	}
	ends, err := endings(context.Background(), req, zone, facts)
	if err != nil {
		return nil, nil, err
	}
	req.Ends = ends
	return req, s, nil
}

// Plan combines the binding's own lifecycle with the source's instances.
func (r *Resource) Plan(ctx context.Context, req *providers.PlanRequest) (*providers.PlanResponse, error) {
	resp := record.Plan(record.Extract, req.Config, req.Prior)
	if req.Config == cty.NilVal {
		resp.Reason = "no longer declared; landed data stays where it is"
		return resp, nil
	}
	if !req.Config.IsWhollyKnown() && !knownEnough(req.Config) {
		return resp, nil
	}
	er, src, err := r.request(req.Addr, req.Config, req.Env)
	if err != nil {
		return nil, err
	}
	inst, diags, err := src.PlanExtract(ctx, er)
	if err != nil {
		return nil, err
	}
	resp.Instances = inst
	resp.Diagnostics = diags
	return resp, nil
}

// knownEnough reports whether the source, dataset and schedule references
// can be planned even though some of their attributes are unknown (a new
// key's fingerprint): the source provider then plans with what it knows.
func knownEnough(v cty.Value) bool {
	for _, a := range []string{"source", "dataset", "schedule"} {
		if providers.String(providers.GetAttr(v, a), "address") == "" {
			return false
		}
	}
	return true
}

// Apply records the binding and lets the source do the deliveries' work.
func (r *Resource) Apply(ctx context.Context, req *providers.ApplyRequest) (*providers.ApplyResponse, error) {
	if req.Config == cty.NilVal {
		return &providers.ApplyResponse{}, nil
	}
	out := &providers.ApplyResponse{State: &providers.Prior{Value: req.Config, Status: state.StatusReady}}
	var todo []providers.InstanceChange
	for _, ic := range req.Planned.Instances {
		if !ic.Settled && (ic.Action == providers.Fetch || ic.Action == providers.Repair || ic.Action == providers.Request ||
			ic.Action == providers.Purge || ic.Action == providers.Expire) {
			todo = append(todo, ic)
		}
	}
	if len(todo) == 0 {
		return out, nil
	}
	er, src, err := r.request(req.Addr, req.Config, req.Env)
	if err != nil {
		return nil, err
	}
	er.Applying = true
	out.Diagnostics = src.ApplyExtract(ctx, er, todo)
	return out, nil
}

// NotYet is the source for a supplier whose ingestion this version does not
// have: the binding is recorded, and plan says plainly that nothing is fetched.
type NotYet struct{ What string }

// PlanExtract returns no instances and a warning.
func (n NotYet) PlanExtract(_ context.Context, req *Request) ([]providers.InstanceChange, hcl.Diagnostics, error) {
	return nil, hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: n.What + " is not supported by this version of im1",
		Detail: req.Addr + " is recorded in state, but no deliveries are planned or fetched for it."}}, nil
}

// ApplyExtract does nothing.
func (NotYet) ApplyExtract(context.Context, *Request, []providers.InstanceChange) hcl.Diagnostics {
	return nil
}
