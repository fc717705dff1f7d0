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
	"github.com/im1dev/im1/state"
)

// batchPlan is EMIS's detail of one batch on the site.
type batchPlan struct {
	batch   *emisfile.Batch
	entries map[string]sftpsite.Entry // remote files by name
	fetch   []emisfile.Name           // files to fetch (all, or late ones)
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
func (p *Provider) planExtract(ctx context.Context, req *extract.Request, entries []sftpsite.Entry) (*extract.Picture, error) {
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
	pic := extract.NewPicture(req.Schedule)
	byName := map[string]sftpsite.Entry{}
	var names []emisfile.Name
	for _, e := range entries {
		n, err := emisfile.ParseName(e.Name)
		if err != nil || n.Agreement != agreement {
			continue // unknown files are reported by the site's refresh; other agreements are not ours
		}
		byName[e.Name] = e
		names = append(names, n)
	}
	byBatch, err := pic.Load(ctx, req, siteAddr)
	if err != nil {
		return nil, err
	}
	if err := pic.FindRepairs(ctx, env, req.Applying); err != nil {
		return nil, err
	}
	// Listed batches not yet landed (or with late files) are fetched.
	for _, b := range emisfile.GroupBatches(names) {
		eb := &extract.Batch{ID: b.ID, Time: b.Time}
		bp := &batchPlan{batch: b, entries: byName}
		eb.Detail = bp
		d := byBatch[b.ID]
		if d != nil && d.Status == state.DeliveryQuarantined {
			continue
		}
		if d != nil && d.Status == state.DeliveryPending {
			// A crashed run left it pending: land it again, replacing the record.
			eb.Resume, d = d, nil
		}
		if d != nil && d.Status != state.DeliveryLanded {
			continue // withdrawn or expired: removed on purpose, never fetched again
		}
		if err := b.Check(required, agreement); err != nil {
			eb.Problem = "incomplete: " + firstLine(err.Error())
		}
		if d != nil {
			eb.Delivery, eb.Kind, eb.Problem = d, d.Kind, ""
			files, err := env.Store.Files(ctx, d.ID)
			if err != nil {
				return nil, err
			}
			have := map[string]bool{}
			haveType := map[string]string{}
			for _, f := range files {
				have[f.RemoteName] = true
				haveType[f.Table] = f.RemoteName
				if e, ok := byName[f.RemoteName]; ok && f.RemoteSize != 0 && (e.Size != f.RemoteSize || !e.MTime.Equal(f.RemoteMTime)) {
					pic.Diags = append(pic.Diags, &hcl.Diagnostic{Severity: hcl.DiagWarning,
						Summary: "EMIS replaced " + f.RemoteName + " after it was landed",
						Detail: fmt.Sprintf("Landed from %d bytes (%s); the site now has %d bytes (%s). The landed copy is kept; ask EMIS whether batch %s was re-sent with different content.",
							f.RemoteSize, f.RemoteMTime.UTC().Format(time.RFC3339), e.Size, e.MTime.UTC().Format(time.RFC3339), d.BatchID)})
				}
			}
			for _, n := range b.Names() {
				switch prev := haveType[n.FileType()]; {
				case have[n.Raw] || !wanted(n.FileType(), required):
				case prev != "":
					// Another file of a type already landed: never overwrite
					// what landed; a human decides which one is right.
					pic.Diags = append(pic.Diags, &hcl.Diagnostic{Severity: hcl.DiagWarning,
						Summary: "a second " + n.FileType() + " file for landed batch " + d.BatchID + " is not fetched",
						Detail:  n.Raw + " arrived after " + prev + " was landed for the same batch; the landed file is kept."})
				default:
					bp.fetch = append(bp.fetch, n)
				}
			}
			if len(bp.fetch) == 0 {
				continue
			}
			eb.Late = len(bp.fetch)
		} else {
			for _, n := range b.Names() {
				if wanted(n.FileType(), required) {
					bp.fetch = append(bp.fetch, n)
				}
			}
		}
		pp := pic.Period(b.Time)
		pp.Batches = append(pp.Batches, eb)
	}
	resumed := map[string]bool{}
	for _, pp := range pic.Periods {
		for _, b := range pp.Batches {
			if b.Resume != nil {
				resumed[b.ID] = true
			}
		}
	}
	if err := pic.FinishPending(ctx, env, resumed); err != nil {
		return nil, err
	}
	var ds []*state.Delivery
	for _, d := range byBatch {
		ds = append(ds, d)
	}
	full, err := handoff.FullBatches(handoff.Dir(env.Dirs.Handoff, "emis", extract.DirName(siteAddr)))
	if err != nil {
		return nil, err
	}
	pic.Diags = append(pic.Diags, chain(pic, ds, full)...)
	return pic, nil
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
func chain(pic *extract.Picture, deliveries []*state.Delivery, full map[string]bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	type link struct {
		t          time.Time
		start, end int64
		b          *extract.Batch
		full       bool
		id         string
		// quarantined batches break the chain until replaced or superseded.
		quarantined bool
	}
	var links []link
	for _, d := range deliveries {
		// Every batch that took its place in the chain counts: landed, or
		// landed once and since removed (withdrawn, expired); a quarantined
		// one is a hole that later deltas must not be loaded across.
		switch d.Status {
		case state.DeliveryLanded, state.DeliveryWithdrawn, state.DeliveryExpired, state.DeliveryQuarantined:
		default:
			continue
		}
		s, _ := strconv.ParseInt(d.SeqFrom, 10, 64)
		e, _ := strconv.ParseInt(d.SeqTo, 10, 64)
		links = append(links, link{t: d.Cutoff, start: s, end: e, full: d.Kind == "full" && d.Status != state.DeliveryQuarantined,
			id: d.BatchID, quarantined: d.Status == state.DeliveryQuarantined})
	}
	for _, pp := range pic.Periods {
		for _, b := range pp.Batches {
			if bp, ok := b.Detail.(*batchPlan); ok && b.Delivery == nil && b.Problem == "" {
				links = append(links, link{t: b.Time, start: bp.batch.ProcStart, end: bp.batch.ProcEnd, b: b, full: full[b.ID], id: b.ID})
			}
		}
	}
	sort.SliceStable(links, func(i, j int) bool { return links[i].t.Before(links[j].t) })
	// A full re-extract makes every earlier delta not yet landed moot.
	lastFull, lastFullID := time.Time{}, ""
	for _, l := range links {
		if l.full && l.t.After(lastFull) {
			lastFull, lastFullID = l.t, l.id
		}
	}
	var prevEnd int64 = -1
	gap := ""
	for i, l := range links {
		if l.b != nil {
			l.b.Kind = "delta"
			if (i == 0 && len(links) > 0 && links[0].b == l.b) || l.full {
				l.b.Kind = "full"
			}
			if !l.full && l.t.Before(lastFull) {
				l.b.Superseded = lastFullID
				continue
			}
		}
		if l.full {
			gap, prevEnd = "", l.end
			continue
		}
		if l.quarantined {
			if gap == "" {
				gap = fmt.Sprintf("batch %s (processing ids %d-%d) before it was quarantined", l.id, l.start, l.end)
			}
			continue
		}
		switch {
		case gap != "" && l.b != nil:
			l.b.Blocked = gap
		case prevEnd >= 0 && l.start <= prevEnd && l.b != nil:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning,
				Summary: fmt.Sprintf("batch %s repeats processing ids %d-%d already delivered", l.b.ID, l.start, l.end),
				Detail:  "A duplicate or re-sent delivery: it is landed as its own batch beside the earlier one, never merged into it."})
		case prevEnd >= 0 && l.start > prevEnd+1:
			gap = fmt.Sprintf("processing ids %d-%d are missing before this batch", prevEnd+1, l.start-1)
			if l.b != nil {
				l.b.Blocked = gap
			}
		}
		if l.end > prevEnd && gap == "" {
			prevEnd = l.end
		}
	}
	return diags
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
