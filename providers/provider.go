// Package providers is the contract between the engine and each resource
// type: a schema, a refresh that observes the real world, a plan that says
// what would change and why, and an apply that does it. Providers never
// import the engine; the engine knows them only through this interface.
package providers

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/schema"
	"github.com/im1dev/im1/state"
)

// Resource is implemented once per block type (organisation, key, ...).
type Resource interface {
	Schema() *schema.Block
	// Refresh observes the world for an object known to state and returns
	// the prior value as observed, plus drift findings (evidence of the world
	// contradicting state). It must not write anything.
	Refresh(ctx context.Context, req *RefreshRequest) (*RefreshResponse, error)
	// Plan compares the configuration with the (refreshed) prior state.
	Plan(ctx context.Context, req *PlanRequest) (*PlanResponse, error)
	// Apply carries out a planned change and returns the new state.
	Apply(ctx context.Context, req *ApplyRequest) (*ApplyResponse, error)
}

// Registry maps block type names to their providers.
type Registry map[string]Resource

// Env is what the engine lends a provider for one run.
type Env struct {
	Store state.Store
	// Now is the clock; tests pass a fixed one.
	Now func() time.Time
	// Zone is the day boundary zone (Europe/London unless configured).
	Zone *time.Location
	Dirs Dirs
	Log  *slog.Logger
	// Progress receives transfer progress; nil means none.
	Progress Progress
	// Getenv reads passphrases and the like (os.Getenv unless a test injects).
	Getenv func(string) string
	// FileMode and DirMode for landed data (0640 and 0750 by default).
	FileMode, DirMode os.FileMode
	// NoRefresh is plan -refresh=false: plan from state alone, without
	// listing sites or gateways or checking landed files.
	NoRefresh bool
	// PurgeWithdrawn lets apply remove data landed under an approval or
	// permission that has ended (apply -purge-withdrawn); off, plan only
	// lists it.
	PurgeWithdrawn bool
	// Applying says the plan being made is an apply's, in the same run: a
	// provider may start, while planning, work only the apply needs (the
	// EMIS provider unlocks the recipient keys while it lists the site).
	Applying bool
}

// Dirs are the directories of the im1 block, all absolute.
type Dirs struct {
	// Config is the configuration directory; relative paths in the
	// configuration (key files, gateway roots) resolve against it.
	Config  string
	Landing string
	Archive string
	Handoff string
}

// Progress reports transfer progress.
type Progress interface {
	// Start begins a transfer of size bytes (-1 when unknown); the returned
	// writer counts bytes and must be closed.
	Start(name string, size int64) io.WriteCloser
}

// Prior is a resource as state has it.
type Prior struct {
	Value   cty.Value // object of the block's ObjectType
	Private []byte
	Status  string
	// Unchanged is set by the engine when state holds exactly the
	// configuration the request carries (Value is that configuration): no
	// configurable attribute changed, without comparing attribute by
	// attribute. A provider that alters the configuration before comparing
	// must not rely on it.
	Unchanged bool
}

// RefreshRequest asks a provider to observe one object.
type RefreshRequest struct {
	Addr   string
	Config cty.Value // may be cty.NilVal when the object left the configuration
	Prior  *Prior
	Env    *Env
}

// RefreshResponse is the observed prior and what contradicts state.
type RefreshResponse struct {
	Prior *Prior
	Drift hcl.Diagnostics
}

// Action is what apply will do to a resource.
type Action string

// Resource actions.
const (
	NoOp    Action = "no-op"
	Create  Action = "create"
	Update  Action = "update"
	Replace Action = "replace"
	Destroy Action = "destroy"
	Rotate  Action = "rotate"
)

// InstanceAction is what apply will do for one expected delivery.
type InstanceAction string

// Extract instance actions.
const (
	Landed     InstanceAction = "landed" // nothing to do
	Fetch      InstanceAction = "fetch"
	Repair     InstanceAction = "repair"
	Request    InstanceAction = "request"
	Wait       InstanceAction = "wait"
	Blocked    InstanceAction = "blocked"
	Quarantine InstanceAction = "quarantine"
	Awaiting   InstanceAction = "awaiting supplier"
	Withdrawn  InstanceAction = "withdrawn"
	// Purge removes what landed under an ended approval or permission
	// (only with apply -purge-withdrawn); Expire removes what is past the
	// schedule's retention.
	Purge  InstanceAction = "purge"
	Expire InstanceAction = "expire"
)

// InstanceChange is the plan for one expected delivery of an extract, or
// for a run of consecutive ones with the same outcome that apply has
// nothing to do for (a year of landed days is one run, so a national plan
// stays small).
type InstanceChange struct {
	Key    string // delivery day or period start, yyyy-mm-dd
	Action InstanceAction
	Reason string
	// Settled states are reported but apply cannot change them
	// (quarantine, awaiting supplier, a request already sent).
	Settled bool
	// Through is the last period's key and Count the number of periods
	// when the change stands for a run; both are zero for one period.
	Through string
	Count   int
}

// N is the number of expected deliveries the change stands for.
func (ic InstanceChange) N() int { return max(ic.Count, 1) }

// Actionable reports whether apply has work to do for the change.
func (ic InstanceChange) Actionable() bool {
	if ic.Settled {
		return false
	}
	switch ic.Action {
	case Landed, Wait, Withdrawn:
		return false
	}
	return true
}

// PlanRequest asks for the change from Prior to Config.
type PlanRequest struct {
	Addr string
	// Config is the evaluated configuration; unknown where it depends on
	// values known only after apply. cty.NilVal when the object left the
	// configuration (plan a destroy).
	Config cty.Value
	Prior  *Prior // nil when not in state
	Env    *Env
	// RefreshOnly plans only state updates that accept observed drift.
	RefreshOnly bool
}

// PlanResponse is one resource's planned change.
type PlanResponse struct {
	Action Action
	Reason string
	// Planned is the value after apply, unknown where only apply knows.
	Planned cty.Value
	// Instances are the extract instances, in key order.
	Instances []InstanceChange
	// Diagnostics are warnings and errors about the change itself.
	Diagnostics hcl.Diagnostics
}

// ApplyRequest carries out a planned change.
type ApplyRequest struct {
	Addr string
	// Config is re-evaluated after dependencies applied, so values that were
	// unknown at plan (a new key's fingerprint) are known here.
	Config  cty.Value
	Prior   *Prior
	Planned *PlanResponse
	Env     *Env
}

// ApplyResponse is the new state; a nil State means the object is gone.
type ApplyResponse struct {
	State       *Prior
	Diagnostics hcl.Diagnostics
}

// NoRefresh is embedded by providers with nothing to observe.
type NoRefresh struct{}

// Refresh returns the prior unchanged.
func (NoRefresh) Refresh(_ context.Context, req *RefreshRequest) (*RefreshResponse, error) {
	return &RefreshResponse{Prior: req.Prior}, nil
}
