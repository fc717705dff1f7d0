// Package record provides resources whose whole lifecycle is "declared and
// recorded": organisations, datasets, schedules, SystmOne units and groups,
// and (until their supplier-facing behaviour lands) reports and extracts.
// Their plan compares configuration with state; their apply stores it.
package record

import (
	"context"
	"fmt"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/schema"
	"github.com/im1dev/im1/state"
)

// Resource is a recorded resource type.
type Resource struct {
	providers.NoRefresh
	Block *schema.Block
	// Fill completes a configured value before planning (e.g. an
	// organisation's ODS code defaults to its label). May be nil.
	Fill func(addr string, v cty.Value) cty.Value
}

// Schema returns the block schema.
func (r *Resource) Schema() *schema.Block { return r.Block }

// Plan compares configuration with state.
func (r *Resource) Plan(_ context.Context, req *providers.PlanRequest) (*providers.PlanResponse, error) {
	prior := req.Prior
	if prior != nil && prior.Unchanged && r.Fill != nil {
		// Filling may change the configuration state was compared with.
		p := *prior
		p.Unchanged = false
		prior = &p
	}
	return Plan(r.Block, r.fill(req.Addr, req.Config), prior), nil
}

// Apply records the configured value.
func (r *Resource) Apply(_ context.Context, req *providers.ApplyRequest) (*providers.ApplyResponse, error) {
	if req.Config == cty.NilVal {
		return &providers.ApplyResponse{}, nil
	}
	v := r.fill(req.Addr, req.Config)
	if !v.IsWhollyKnown() {
		return nil, fmt.Errorf("%s: configuration still has values known only after apply", req.Addr)
	}
	return &providers.ApplyResponse{State: &providers.Prior{Value: v, Status: state.StatusReady}}, nil
}

func (r *Resource) fill(addr string, v cty.Value) cty.Value {
	if r.Fill == nil || v == cty.NilVal {
		return v
	}
	return r.Fill(addr, v)
}

// Plan is the plan of a resource whose state is just its configuration.
// Providers with more to do start from it.
func Plan(s *schema.Block, config cty.Value, prior *providers.Prior) *providers.PlanResponse {
	switch {
	case config == cty.NilVal && prior == nil:
		return &providers.PlanResponse{Action: providers.NoOp}
	case config == cty.NilVal:
		return &providers.PlanResponse{Action: providers.Destroy, Reason: "no longer declared", Planned: cty.NilVal}
	case prior == nil:
		return &providers.PlanResponse{Action: providers.Create, Planned: config}
	}
	var names []string
	var forceNew bool
	if !prior.Unchanged {
		names, forceNew = providers.Changed(s, prior.Value, config)
	}
	switch {
	case len(names) == 0 && prior.Status == state.StatusTainted:
		return &providers.PlanResponse{Action: providers.Replace, Reason: "tainted by a failed apply", Planned: config}
	case len(names) == 0:
		return &providers.PlanResponse{Action: providers.NoOp, Planned: prior.Value}
	case forceNew:
		return &providers.PlanResponse{Action: providers.Replace, Reason: "changed " + strings.Join(names, ", ") + " (forces replacement)", Planned: config}
	default:
		return &providers.PlanResponse{Action: providers.Update, Reason: "changed " + strings.Join(names, ", "), Planned: config}
	}
}
