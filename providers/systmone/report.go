// Package systmone is the TPP SystmOne strategic-reporting provider: the
// report sheet handed to the reporting unit, and the ingestion of the
// extracts the SystmOne client writes into a gateway root directory,
// through the same landing pipeline as EMIS.
package systmone

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/extract"
	"github.com/im1dev/im1/providers/handoff"
	"github.com/im1dev/im1/providers/record"
	"github.com/im1dev/im1/providers/systmone/srfile"
	"github.com/im1dev/im1/schema"
	"github.com/im1dev/im1/state"
)

// Supplier is the handoff folder name for SystmOne.
const Supplier = "systmone"

// Provider is the SystmOne provider.
type Provider struct{}

// New returns the provider.
func New() *Provider { return &Provider{} }

// Report returns the systmone_strategic_report resource.
func (p *Provider) Report() providers.Resource { return &Report{p: p} }

// Report is the systmone_strategic_report resource: the sheet the
// reporting unit follows, awaiting the supplier until a delivery matches.
type Report struct{ p *Provider }

// Schema is the report block.
func (r *Report) Schema() *schema.Block { return record.StrategicReport }

// sheet builds the report sheet from the report's configuration.
func sheet(addr string, v cty.Value, env *providers.Env) srfile.ReportConfig {
	unit := providers.GetAttr(v, "reporting_unit")
	group := providers.GetAttr(v, "organisation_group")
	sched := providers.GetAttr(v, "schedule")
	contact := providers.String(v, "technical_contact")
	if contact == "" {
		contact = providers.String(unit, "technical_contact")
	}
	c := srfile.ReportConfig{
		Report: extract.DirName(addr), ReportingUnit: providers.String(unit, "ods"),
		Organisations: providers.Strings(group, "organisations"), Tables: tables(providers.GetAttr(v, "dataset")),
		Delimiter: providers.String(v, "delimiter"), TextQualifier: providers.String(v, "text_qualifier"),
		Frequency: providers.String(sched, "frequency"), Start: providers.String(sched, "start"),
		RootDirectory: rootDir(v, env), TechnicalContact: contact,
	}
	return c
}

func rootDir(v cty.Value, env *providers.Env) string {
	p := providers.String(v, "root_directory")
	if p != "" && !filepath.IsAbs(p) {
		p = filepath.Join(env.Dirs.Config, p)
	}
	return p
}

// tables lists a dataset's SR tables and fields.
func tables(ds cty.Value) []srfile.ReportTable {
	var out []srfile.ReportTable
	seen := map[string]bool{}
	tb := providers.GetAttr(ds, "table")
	if tb.IsKnown() && !tb.IsNull() && tb.CanIterateElements() {
		for it := tb.ElementIterator(); it.Next(); {
			_, t := it.Element()
			name := providers.String(t, "name")
			seen[name] = true
			out = append(out, srfile.ReportTable{Name: name, Fields: providers.Strings(t, "fields")})
		}
	}
	for _, n := range providers.Strings(ds, "tables") {
		if !seen[n] {
			out = append(out, srfile.ReportTable{Name: n})
		}
	}
	return out
}

// sheetID identifies a sheet by its content, so a changed report is a new
// handoff and an unchanged one is not handed off twice.
func sheetID(addr string, c srfile.ReportConfig) string {
	b, _ := json.Marshal(c)
	s := sha256.Sum256(b)
	return extract.DirName(addr) + "-" + hex.EncodeToString(s[:6])
}

func (r *Report) handoff(ctx context.Context, env *providers.Env, addr, id string) (*state.Handoff, error) {
	if env.Store == nil {
		return nil, nil
	}
	hs, err := env.Store.Handoffs(ctx, addr)
	if err != nil {
		return nil, err
	}
	for i := range hs {
		if hs[i].Kind == handoff.ReportConfig && hs[i].ID == id {
			return &hs[i], nil
		}
	}
	return nil, nil
}

// Refresh reports where the latest delivery contradicts the report.
func (r *Report) Refresh(ctx context.Context, req *providers.RefreshRequest) (*providers.RefreshResponse, error) {
	resp := &providers.RefreshResponse{Prior: req.Prior}
	if req.Config == cty.NilVal || !req.Config.IsWhollyKnown() || req.Env.Store == nil {
		return resp, nil
	}
	resp.Drift = reportDrift(ctx, req.Env, req.Addr, req.Config)
	return resp, nil
}

// Plan compares the report with state and with the sheet handed off.
func (r *Report) Plan(ctx context.Context, req *providers.PlanRequest) (*providers.PlanResponse, error) {
	resp := record.Plan(record.StrategicReport, req.Config, req.Prior)
	if req.Config == cty.NilVal || resp.Action != providers.NoOp || !req.Config.IsWhollyKnown() {
		return resp, nil
	}
	c := sheet(req.Addr, req.Config, req.Env)
	h, err := r.handoff(ctx, req.Env, req.Addr, sheetID(req.Addr, c))
	if err != nil {
		return nil, err
	}
	switch {
	case h == nil:
		resp.Action, resp.Reason, resp.Planned = providers.Update, "hand the report sheet to the reporting unit", req.Config
	case h.Status == state.HandoffDone && req.Prior.Status == state.StatusAwaitingSupplier:
		resp.Action, resp.Reason, resp.Planned = providers.Update, "a delivery matches the report sheet", req.Config
	case h.Status == state.HandoffAwaiting:
		resp.Diagnostics = append(resp.Diagnostics, &hcl.Diagnostic{Severity: hcl.DiagWarning,
			Summary: "awaiting supplier: no delivery matches the report sheet yet",
			Detail:  "The sheet for the reporting unit is at " + h.Path + " (and its .md twin)."})
	}
	return resp, nil
}

// Apply hands the report sheet to the reporting unit.
func (r *Report) Apply(ctx context.Context, req *providers.ApplyRequest) (*providers.ApplyResponse, error) {
	if req.Config == cty.NilVal {
		return &providers.ApplyResponse{}, nil
	}
	out := &providers.ApplyResponse{State: &providers.Prior{Value: req.Config, Status: state.StatusReady}}
	c := sheet(req.Addr, req.Config, req.Env)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	id := sheetID(req.Addr, c)
	h, err := r.handoff(ctx, req.Env, req.Addr, id)
	if err != nil {
		return nil, err
	}
	if h == nil {
		dir := handoff.Dir(req.Env.Dirs.Handoff, Supplier, extract.DirName(req.Addr))
		p, err := handoff.Write(dir, handoff.ReportConfig, id, req.Addr, req.Env.Now(), c, ".md", []byte(c.Markdown()))
		if err != nil {
			return nil, err
		}
		now := req.Env.Now().UTC()
		h = &state.Handoff{ID: id, Source: req.Addr, Kind: handoff.ReportConfig, Path: p, Status: state.HandoffAwaiting, Created: now, Updated: now}
		if err := req.Env.Store.Tx(ctx, func(tx state.Tx) error { return tx.PutHandoff(*h) }); err != nil {
			return nil, err
		}
	}
	if h.Status != state.HandoffDone {
		out.State.Status = state.StatusAwaitingSupplier
	}
	return out, nil
}

// reportDrift compares the latest landed delivery with the report: tables
// missing or undeclared, organisations of the group absent.
func reportDrift(ctx context.Context, env *providers.Env, addr string, v cty.Value) hcl.Diagnostics {
	ds, err := env.Store.Deliveries(ctx, "")
	if err != nil {
		return nil
	}
	var latest *state.Delivery
	for i := range ds {
		if ds[i].Source == addr && ds[i].Status == state.DeliveryLanded && (latest == nil || ds[i].Cutoff.After(latest.Cutoff)) {
			latest = &ds[i]
		}
	}
	if latest == nil {
		return nil
	}
	var diags hcl.Diagnostics
	add := func(sev hcl.DiagnosticSeverity, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: sev, Summary: summary, Detail: detail})
	}
	files, _ := env.Store.Files(ctx, latest.ID)
	have := map[string]bool{}
	for _, f := range files {
		if f.Status == statusUndeclared {
			add(hcl.DiagWarning, "undeclared table "+f.Table+" is in the delivery", "Extract "+latest.BatchID+" carries "+f.RemoteName+", which the report's dataset does not declare; it was not landed.")
			continue
		}
		have[f.Table] = true
	}
	for _, t := range tables(providers.GetAttr(v, "dataset")) {
		if !have[t.Name] {
			add(hcl.DiagError, "declared table "+t.Name+" is absent from the latest delivery", "Extract "+latest.BatchID+" has no "+t.Name+".csv. Check the report's table list in the SystmOne client.")
		}
	}
	obs, _ := env.Store.Observations(ctx, addr)
	seen := map[string]bool{}
	for _, o := range obs {
		if o.DeliveryID == latest.ID {
			seen[o.ODS] = true
		}
	}
	if len(seen) > 0 {
		for _, ods := range providers.Strings(providers.GetAttr(v, "organisation_group"), "organisations") {
			if !seen[ods] {
				add(hcl.DiagError, "organisation "+ods+" of the group is absent from SROrganisation", "Extract "+latest.BatchID+"'s SROrganisation has no row for "+ods+": its data is not in the report.")
			}
		}
	}
	sort.SliceStable(diags, func(i, j int) bool { return diags[i].Summary < diags[j].Summary })
	return diags
}

// statusUndeclared marks a file present in a delivery but not declared.
const statusUndeclared = "undeclared"
