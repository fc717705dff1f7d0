package emis

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/emis/emisfile"
	"github.com/im1dev/im1/providers/handoff"
	"github.com/im1dev/im1/providers/record"
	"github.com/im1dev/im1/schema"
	"github.com/im1dev/im1/state"
)

// Site is the emis_site resource: the SFTP site, the public key handed to
// EMIS, and the drift that the site's files and the sharing agreement show.
type Site struct{ p *Provider }

// Close ends the run's connections (the engine calls it once per run).
func (s *Site) Close() error { return s.p.Close() }

// Schema is the emis_site block.
func (s *Site) Schema() *schema.Block { return SiteSchema }

// Refresh lists the site and reads what earlier applies observed in the
// sharing-agreement and organisation files; it writes nothing.
func (s *Site) Refresh(ctx context.Context, req *providers.RefreshRequest) (*providers.RefreshResponse, error) {
	resp := &providers.RefreshResponse{Prior: req.Prior}
	if req.Config == cty.NilVal || !req.Config.IsKnown() {
		return resp, nil
	}
	if rk := providers.GetAttr(req.Config, "recipient_keys"); req.Env.Applying && rk.IsWhollyKnown() {
		s.p.prepareKeys(ctx, req.Env, providers.Strings(req.Config, "recipient_keys"))
	}
	entries, err := s.p.list(ctx, withAddr(req.Config, req.Addr), req.Env, false)
	if err != nil {
		return nil, err
	}
	var junk []string
	for _, e := range entries {
		if _, err := emisfile.ParseName(e.Name); err != nil {
			junk = append(junk, e.Name)
		}
	}
	if len(junk) > 0 {
		resp.Drift = append(resp.Drift, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  fmt.Sprintf("%d unknown file(s) on the site, not fetched", len(junk)),
			Detail:   "Names that are not EMIS extract files: " + quoteList(junk, 10) + ". They are never fetched as data; ask EMIS or the site owner what they are.",
		})
	}
	resp.Drift = append(resp.Drift, orgDrift(ctx, req.Env, req.Addr, req.Config)...)
	return resp, nil
}

func withAddr(v cty.Value, addr string) cty.Value {
	if providers.String(v, "address") != "" {
		return v
	}
	return providers.SetAttr(v, "address", cty.StringVal(addr))
}

// Plan compares configuration with state and checks that EMIS has the
// current public key.
func (s *Site) Plan(ctx context.Context, req *providers.PlanRequest) (*providers.PlanResponse, error) {
	resp := record.Plan(SiteSchema, req.Config, req.Prior)
	if req.Config == cty.NilVal {
		return resp, nil
	}
	fprs := providers.Strings(req.Config, "recipient_keys")
	if len(fprs) == 0 || resp.Action != providers.NoOp {
		return resp, nil
	}
	current := strings.ToUpper(fprs[0])
	h, err := s.handoff(ctx, req.Env, req.Addr, current)
	if err != nil {
		return nil, err
	}
	switch {
	case h == nil:
		resp.Action, resp.Reason = providers.Update, "hand public key "+current+" to EMIS"
		resp.Planned = req.Config
	case h.Status == state.HandoffAwaiting && req.Prior.Status != state.StatusAwaitingSupplier:
		resp.Action, resp.Reason = providers.Update, "awaiting EMIS: no batch encrypted to key "+current+" yet"
		resp.Planned = req.Config
	case h.Status == state.HandoffDone && req.Prior.Status == state.StatusAwaitingSupplier:
		resp.Action, resp.Reason = providers.Update, "EMIS now encrypts to key "+current+" (a delivered batch proved it)"
		resp.Planned = req.Config
	case h.Status == state.HandoffAwaiting:
		resp.Diagnostics = append(resp.Diagnostics, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "awaiting supplier: EMIS has not yet delivered a batch encrypted to key " + current,
			Detail:   "The public key was handed off at " + h.Path + ". Batches encrypted to earlier keys still decrypt.",
		})
	}
	return resp, nil
}

func (s *Site) handoff(ctx context.Context, env *providers.Env, addr, fpr string) (*state.Handoff, error) {
	if env.Store == nil {
		return nil, nil
	}
	hs, err := s.p.siteHandoffs(ctx, env.Store, addr)
	if err != nil {
		return nil, err
	}
	for i := range hs {
		if hs[i].Kind == handoff.PublicKey && hs[i].ID == publicKeyHandoffID(addr, fpr) {
			return &hs[i], nil
		}
	}
	return nil, nil
}

func publicKeyHandoffID(addr, fpr string) string { return dirName(addr) + "-" + fpr }

// Apply records the site and hands the current public key to EMIS.
func (s *Site) Apply(ctx context.Context, req *providers.ApplyRequest) (*providers.ApplyResponse, error) {
	if req.Config == cty.NilVal {
		return &providers.ApplyResponse{}, nil
	}
	out := &providers.ApplyResponse{State: &providers.Prior{Value: req.Config, Status: state.StatusReady}}
	fprs := providers.Strings(req.Config, "recipient_keys")
	if len(fprs) == 0 {
		return out, nil
	}
	current := strings.ToUpper(fprs[0])
	h, err := s.handoff(ctx, req.Env, req.Addr, current)
	if err != nil {
		return nil, err
	}
	if h == nil {
		keys, err := stateKeys(ctx, req.Env)
		if err != nil {
			return nil, err
		}
		kr := keys[current]
		if kr == nil || kr.publicKey == "" || !strings.EqualFold(kr.fingerprint, current) {
			return nil, fmt.Errorf("recipient key %s is not the current key of any key resource in state", current)
		}
		dir := handoff.Dir(req.Env.Dirs.Handoff, "emis", dirName(req.Addr))
		payload := map[string]any{
			"site": req.Addr, "sharing_agreement": providers.String(req.Config, "sharing_agreement"),
			"fingerprint": current, "key": kr.addr, "armored": kr.publicKey,
			"instructions": "Encrypt every file of this sharing agreement's extract to this key (OpenPGP, integrity-protected).",
		}
		id := publicKeyHandoffID(req.Addr, current)
		path, err := handoff.Write(dir, handoff.PublicKey, id, req.Addr, req.Env.Now(), payload, ".asc", []byte(kr.publicKey))
		if err != nil {
			return nil, err
		}
		h = &state.Handoff{ID: id, Source: req.Addr, Kind: handoff.PublicKey, Path: path, Status: state.HandoffAwaiting, Created: req.Env.Now().UTC(), Updated: req.Env.Now().UTC()}
		if err := req.Env.Store.Tx(ctx, func(tx state.Tx) error { return tx.PutHandoff(*h) }); err != nil {
			return nil, err
		}
	}
	if h.Status != state.HandoffDone {
		out.State.Status = state.StatusAwaitingSupplier
	}
	return out, nil
}

// orgDrift compares the declared organisations with what the latest
// landed batch's sharing-agreement and organisation files said.
func orgDrift(ctx context.Context, env *providers.Env, addr string, site cty.Value) hcl.Diagnostics {
	if env.Store == nil {
		return nil
	}
	obs, err := env.Store.Observations(ctx, addr)
	if err != nil || len(obs) == 0 {
		return nil
	}
	// Observations come per delivery; the latest delivery is the truth now,
	// and the one before it tells of ODS code changes.
	latest, prev := int64(-1), int64(-1)
	for _, o := range obs {
		if o.DeliveryID > latest {
			latest = o.DeliveryID
		}
	}
	for _, o := range obs {
		if o.DeliveryID < latest && o.DeliveryID > prev {
			prev = o.DeliveryID
		}
	}
	now := map[string]state.Observation{}
	byGUIDPrev := map[string]string{}
	for _, o := range obs {
		switch o.DeliveryID {
		case latest:
			now[o.ODS] = o
		case prev:
			byGUIDPrev[o.OrgGUID] = o.ODS
		}
	}
	var diags hcl.Diagnostics
	add := func(sev hcl.DiagnosticSeverity, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: sev, Summary: summary, Detail: detail})
	}
	declared := map[string]bool{}
	for _, ods := range providers.Strings(site, "organisations") {
		declared[ods] = true
		o, ok := now[ods]
		switch {
		case !ok:
			add(hcl.DiagError, "organisation "+ods+" is missing from the sharing agreement",
				"The latest landed batch's Agreements_SharingOrganisation and Admin_Organisation files have no row for "+ods+". Its data is not being extracted.")
		case o.Deleted:
			add(hcl.DiagError, "organisation "+ods+" is deleted from the sharing agreement", "Agreements_SharingOrganisation: Deleted=true for OrganisationGuid "+o.OrgGUID+".")
		case o.Disabled:
			add(hcl.DiagError, "organisation "+ods+" is disabled in the sharing agreement", "Agreements_SharingOrganisation: Disabled=true for OrganisationGuid "+o.OrgGUID+". EMIS sends empty patient files for a disabled practice until it is re-enabled.")
		case !o.IsActivated:
			add(hcl.DiagWarning, "organisation "+ods+" is not activated in the sharing agreement", "Agreements_SharingOrganisation: IsActivated=false for OrganisationGuid "+o.OrgGUID+".")
		}
	}
	for _, o := range now {
		if was, ok := byGUIDPrev[o.OrgGUID]; ok && was != o.ODS {
			add(hcl.DiagError, "ODS code for "+o.OrgGUID+" changed from "+was+" to "+o.ODS+" and needs manual handling",
				"Admin_Organisation in the latest batch maps OrganisationGuid "+o.OrgGUID+" ("+o.Name+") to "+o.ODS+"; the batch before mapped it to "+was+". Update the configuration once the change is confirmed.")
			continue
		}
		if !declared[o.ODS] && o.ODS != "" && !o.Deleted {
			add(hcl.DiagWarning, "undeclared organisation "+o.ODS+" is in the extract", "Admin_Organisation lists "+o.ODS+" ("+o.Name+"), which emis_site "+addr+" does not declare. Its rows are landed with the batch; declare it or ask EMIS to remove it from the agreement.")
		}
	}
	sort.SliceStable(diags, func(i, j int) bool { return diags[i].Summary < diags[j].Summary })
	return diags
}

func quoteList(xs []string, max int) string {
	var b strings.Builder
	for i, x := range xs {
		if i == max {
			fmt.Fprintf(&b, " and %d more", len(xs)-max)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", x)
	}
	return b.String()
}
