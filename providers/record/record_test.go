package record

import (
	"context"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/schema"
	"github.com/im1dev/im1/state"
)

// TestPlanUnchangedPrior: a prior the engine marked Unchanged skips the
// attribute comparison, unless the resource fills the configuration first
// (then state was compared with something else).
func TestPlanUnchangedPrior(t *testing.T) {
	blk := &schema.Block{Attributes: []*schema.Attribute{{Name: "ods", Type: cty.String}}}
	declared := cty.ObjectVal(map[string]cty.Value{"ods": cty.NullVal(cty.String)})
	fill := func(_ string, v cty.Value) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{"ods": cty.StringVal("A81001")})
	}
	tests := []struct {
		name   string
		fill   func(string, cty.Value) cty.Value
		status string
		want   providers.Action
	}{
		{"unchanged", nil, state.StatusReady, providers.NoOp},
		{"unchanged but tainted", nil, state.StatusTainted, providers.Replace},
		{"filled differs from state", fill, state.StatusReady, providers.Update},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Resource{Block: blk, Fill: tc.fill}
			prior := &providers.Prior{Value: declared, Status: tc.status, Unchanged: true}
			resp, err := r.Plan(context.Background(), &providers.PlanRequest{Addr: "organisation.x", Config: declared, Prior: prior})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Action != tc.want {
				t.Fatalf("action %s (%s), want %s", resp.Action, resp.Reason, tc.want)
			}
			if !prior.Unchanged {
				t.Fatal("Plan changed the caller's prior")
			}
		})
	}
}
