package emis

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/emis/emisfile"
	"github.com/im1dev/im1/providers/emis/sftpsite"
	"github.com/im1dev/im1/providers/extract"
	"github.com/im1dev/im1/providers/handoff"
	"github.com/im1dev/im1/providers/landing"
	"github.com/im1dev/im1/state"
)

// batchPlan is one batch and what to do with it.
type batchPlan struct {
	batch    *emisfile.Batch
	entries  map[string]sftpsite.Entry // remote files by name
	delivery *state.Delivery           // nil when not landed yet
	fetch    []emisfile.Name           // files to fetch (all, or late ones)
	repair   []state.File              // landed files missing or changed
	problem  string                    // why it cannot be fetched yet (incomplete)
	blocked  string                    // why loading it would corrupt the chain
	kind     string                    // full or delta
}

// periodPlan is everything about one expected delivery.
type periodPlan struct {
	key     time.Time
	batches []*batchPlan
	landed  []*state.Delivery
	quar    []*state.Delivery
}

// extractPlan is the whole picture for one extract.
type extractPlan struct {
	periods map[string]*periodPlan
	order   []string
	diags   hcl.Diagnostics
	// requests already handed to EMIS, by period key.
	requested map[string]*state.Handoff
}

func datasetTables(ds cty.Value) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range providers.Strings(ds, "tables") {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	tb := providers.GetAttr(ds, "table")
	if tb.IsKnown() && !tb.IsNull() && tb.CanIterateElements() {
		for it := tb.ElementIterator(); it.Next(); {
			_, v := it.Element()
			if n := providers.String(v, "name"); n != "" && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// planExtract works out, from the site listing and state, what each
// expected delivery needs. It reads only.
func (p *Provider) planExtract(ctx context.Context, req *extract.Request, entries []sftpsite.Entry) (*extractPlan, error) {
	env := req.Env
	site := req.Source
	siteAddr := providers.String(site, "address")
	agreement := strings.ToUpper(providers.String(site, "sharing_agreement"))
	required := datasetTables(req.Dataset)
	for _, t := range required {
		if _, ok := emisfile.Lookup(t); !ok {
			return nil, fmt.Errorf("dataset table %q is not an EMIS file type (known: %s)", t, strings.Join(emisfile.FileTypes(), ", "))
		}
	}
	ep := &extractPlan{periods: map[string]*periodPlan{}, requested: map[string]*state.Handoff{}}
	period := func(t time.Time) *periodPlan {
		k := req.Schedule.PeriodOf(t)
		ks := extract.Key(k)
		pp := ep.periods[ks]
		if pp == nil {
			pp = &periodPlan{key: k}
			ep.periods[ks] = pp
		}
		return pp
	}
	byName := map[string]sftpsite.Entry{}
	var names []emisfile.Name
	for _, e := range entries {
		n, err := emisfile.ParseName(e.Name)
		if err != nil {
			continue // reported by the site's refresh as unknown files
		}
		if n.Agreement != agreement {
			continue // another agreement's files share the directory
		}
		byName[e.Name] = e
		names = append(names, n)
	}
	var deliveries []state.Delivery
	if env.Store != nil {
		var err error
		if deliveries, err = env.Store.Deliveries(ctx, req.Addr); err != nil {
			return nil, err
		}
		hs, err := env.Store.Handoffs(ctx, req.Addr)
		if err != nil {
			return nil, err
		}
		for i := range hs {
			if hs[i].Kind == handoff.ReextractRequest && hs[i].Status == state.HandoffAwaiting {
				ep.requested[strings.TrimPrefix(hs[i].ID, dirName(req.Addr)+"-")] = &hs[i]
			}
		}
	}
	byBatch := map[string]*state.Delivery{}
	for i := range deliveries {
		d := &deliveries[i]
		if d.Source != siteAddr {
			continue
		}
		byBatch[d.BatchID] = d
		pp := period(d.Cutoff)
		switch d.Status {
		case state.DeliveryLanded:
			pp.landed = append(pp.landed, d)
		case state.DeliveryQuarantined:
			pp.quar = append(pp.quar, d)
		}
	}
	landDir, err := openIfExists(env.Dirs.Landing)
	if err != nil {
		return nil, err
	}
	if landDir != nil {
		defer landDir.Close()
	}
	// Landed files missing or changed are repaired.
	for _, pp := range ep.periods {
		for _, d := range pp.landed {
			broken, err := brokenFiles(ctx, env, landDir, d)
			if err != nil {
				return nil, err
			}
			if len(broken) > 0 {
				pp.batches = append(pp.batches, &batchPlan{delivery: d, repair: broken, kind: d.Kind})
			}
		}
	}
	// Listed batches not yet landed (or with late files) are fetched.
	for _, b := range emisfile.GroupBatches(names) {
		bp := &batchPlan{batch: b, entries: byName}
		d := byBatch[b.ID]
		if d != nil && d.Status == state.DeliveryQuarantined {
			continue
		}
		if err := b.Check(required, agreement); err != nil {
			bp.problem = "incomplete: " + firstLine(err.Error())
		}
		if d != nil {
			bp.delivery = d
			files, err := env.Store.Files(ctx, d.ID)
			if err != nil {
				return nil, err
			}
			have := map[string]bool{}
			for _, f := range files {
				have[f.RemoteName] = true
				if e, ok := byName[f.RemoteName]; ok && f.RemoteSize != 0 && (e.Size != f.RemoteSize || !e.MTime.Equal(f.RemoteMTime)) {
					ep.diags = append(ep.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning,
						Summary: "EMIS replaced " + f.RemoteName + " after it was landed",
						Detail:  fmt.Sprintf("Landed from %d bytes (%s); the site now has %d bytes (%s). The landed copy is kept; ask EMIS whether batch %s was re-sent with different content.", f.RemoteSize, f.RemoteMTime.UTC().Format(time.RFC3339), e.Size, e.MTime.UTC().Format(time.RFC3339), d.BatchID)})
				}
			}
			for _, n := range b.Names() {
				if !have[n.Raw] && wanted(n.FileType(), required) {
					bp.fetch = append(bp.fetch, n)
				}
			}
			if len(bp.fetch) == 0 {
				continue
			}
			bp.problem = ""
		} else {
			for _, n := range b.Names() {
				if wanted(n.FileType(), required) {
					bp.fetch = append(bp.fetch, n)
				}
			}
		}
		pp := period(b.Time)
		pp.batches = append(pp.batches, bp)
	}
	ep.diags = append(ep.diags, chain(ep, deliveries, siteAddr)...)
	// Every period the schedule expects, with or without a delivery.
	for _, k := range req.Schedule.Periods(env.Now()) {
		period(k)
	}
	for k := range ep.periods {
		ep.order = append(ep.order, k)
	}
	sort.Strings(ep.order)
	return ep, nil
}

func wanted(fileType string, required []string) bool {
	if fileType == emisfile.SharingOrganisation || fileType == emisfile.AdminOrganisation {
		return true
	}
	for _, r := range required {
		if r == fileType {
			return true
		}
	}
	return false
}

// chain marks the first batch full and each later one a delta that must
// follow on from its predecessor's processing ids; after a gap, later
// deltas are blocked (loading them would corrupt the chain) until the
// missing batch or a new full extract arrives.
func chain(ep *extractPlan, deliveries []state.Delivery, siteAddr string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	type link struct {
		t          time.Time
		start, end int64
		bp         *batchPlan
	}
	var links []link
	for i := range deliveries {
		d := &deliveries[i]
		if d.Source != siteAddr || d.Status != state.DeliveryLanded {
			continue
		}
		s, _ := strconv.ParseInt(d.SeqFrom, 10, 64)
		e, _ := strconv.ParseInt(d.SeqTo, 10, 64)
		links = append(links, link{t: d.Cutoff, start: s, end: e})
	}
	for _, pp := range ep.periods {
		for _, bp := range pp.batches {
			if bp.batch != nil && bp.delivery == nil && bp.problem == "" {
				links = append(links, link{t: bp.batch.Time, start: bp.batch.ProcStart, end: bp.batch.ProcEnd, bp: bp})
			}
		}
	}
	sort.SliceStable(links, func(i, j int) bool { return links[i].t.Before(links[j].t) })
	var prevEnd int64 = -1
	gap := ""
	for i, l := range links {
		if l.bp != nil {
			l.bp.kind = "delta"
			if i == 0 {
				l.bp.kind = "full"
			}
		}
		switch {
		case gap != "" && l.bp != nil:
			l.bp.blocked = gap
		case prevEnd >= 0 && l.start <= prevEnd && l.bp != nil:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning,
				Summary: fmt.Sprintf("batch %s repeats processing ids %d-%d already delivered", l.bp.batch.ID, l.start, l.end),
				Detail:  "A duplicate or re-sent delivery: it is landed as its own batch beside the earlier one, never merged into it."})
		case prevEnd >= 0 && l.start > prevEnd+1:
			gap = fmt.Sprintf("processing ids %d-%d are missing before this batch", prevEnd+1, l.start-1)
			if l.bp != nil {
				l.bp.blocked = gap
			}
		}
		if l.end > prevEnd && gap == "" {
			prevEnd = l.end
		}
	}
	return diags
}

// instances turns the plan into one change per expected delivery.
func (ep *extractPlan) instances(sched extract.Schedule, now time.Time, addr string) []providers.InstanceChange {
	var out []providers.InstanceChange
	for _, k := range ep.order {
		pp := ep.periods[k]
		ic := providers.InstanceChange{Key: k}
		var fetch, repair, blocked, waiting []string
		for _, bp := range pp.batches {
			switch {
			case len(bp.repair) > 0:
				repair = append(repair, repairReason(bp))
			case bp.problem != "":
				waiting = append(waiting, "batch "+bp.batch.ID+" "+bp.problem)
			case bp.blocked != "":
				blocked = append(blocked, "batch "+bp.batch.ID+": "+bp.blocked)
			case bp.delivery != nil:
				fetch = append(fetch, fmt.Sprintf("%d late file(s) for landed batch %s", len(bp.fetch), bp.batch.ID))
			default:
				fetch = append(fetch, "delivered, not yet landed")
			}
		}
		deadline := sched.Deadline(pp.key)
		switch {
		case len(repair) > 0:
			ic.Action, ic.Reason = providers.Repair, strings.Join(repair, "; ")
		case len(fetch) > 0:
			ic.Action, ic.Reason = providers.Fetch, dedupe(fetch)
		case len(blocked) > 0:
			ic.Action, ic.Reason = providers.Blocked, strings.Join(blocked, "; ")
		case len(pp.landed) > 0:
			ic.Action = providers.Landed
		case len(pp.quar) > 0:
			ic.Action, ic.Reason, ic.Settled = providers.Quarantine, pp.quar[0].Reason, true
		case len(waiting) > 0:
			ic.Action, ic.Reason = providers.Wait, strings.Join(waiting, "; ")
		case now.Before(pp.key):
			ic.Action, ic.Reason = providers.Wait, "not yet due"
		case now.Before(deadline):
			ic.Action, ic.Reason = providers.Wait, "expected by "+deadline.Format("2006-01-02 15:04 MST")
		case ep.requested[k] != nil:
			ic.Action, ic.Reason, ic.Settled = providers.Awaiting, "re-extract requested "+ep.requested[k].Created.Format(time.DateOnly), true
		default:
			ic.Action, ic.Reason = providers.Request, "no delivery by "+deadline.Format("2006-01-02 15:04 MST")+"; ask EMIS to re-extract"
		}
		out = append(out, ic)
	}
	return out
}

func repairReason(bp *batchPlan) string {
	var parts []string
	for _, f := range bp.repair {
		parts = append(parts, f.Reason)
	}
	return "batch " + bp.delivery.BatchID + ": " + strings.Join(parts, ", ")
}

func dedupe(xs []string) string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return strings.Join(out, "; ")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// brokenFiles finds landed files that are missing or changed: a cheap
// stat first, a re-hash only when size or time says the file was touched.
func brokenFiles(ctx context.Context, env *providers.Env, dir *landing.Dir, d *state.Delivery) ([]state.File, error) {
	files, err := env.Store.Files(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	var out []state.File
	for _, f := range files {
		if f.Status != state.FileLanded {
			continue
		}
		if dir == nil {
			f.Reason = f.Table + " missing"
			out = append(out, f)
			continue
		}
		fi, err := dir.Stat(f.LandedPath)
		switch {
		case err != nil:
			f.Reason = f.Table + " missing"
		case fi.Size() != f.LandedSize:
			f.Reason = f.Table + " changed (size)"
		case fi.ModTime().After(d.Updated.Add(time.Second)):
			sum, _, err := dir.Hash(f.LandedPath)
			if err != nil || sum != f.LandedSHA256 {
				f.Reason = f.Table + " changed (sha256)"
			}
		}
		if f.Reason != "" {
			out = append(out, f)
		}
	}
	return out, nil
}

func openIfExists(path string) (*landing.Dir, error) {
	if path == "" {
		return nil, nil
	}
	if _, err := statDir(path); err != nil {
		return nil, nil
	}
	return landing.OpenDir(path, 0o640, 0o750)
}
