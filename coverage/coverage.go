// Package coverage reports, per organisation and expected delivery, what
// landed, what is missing and why. It joins a plan document (the action and
// reason of every expected delivery) with state (deliveries, files and the
// per-organisation observations recorded while landing), and renders the
// result as text, JSON, or one self-contained HTML page.
package coverage

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/reconcile"
	"github.com/im1dev/im1/state"
)

// FormatVersion of the JSON report; a minor bump is additive.
const FormatVersion = "1.0"

// Status is what an organisation-period cell shows.
type Status string

// Statuses, in the order the legend lists them. Worse statuses sort first
// in the HTML page.
const (
	Landed       Status = "landed"
	Missing      Status = "missing"
	Blocked      Status = "blocked"
	Quarantined  Status = "quarantined"
	Awaiting     Status = "awaiting supplier"
	NotDue       Status = "not yet due"
	NotExtracted Status = "not extracted"
)

// Statuses lists every status in legend order.
var Statuses = []Status{Landed, Missing, Blocked, Quarantined, Awaiting, NotDue, NotExtracted}

// statusOf maps a plan instance action to what coverage shows. Fetch and
// repair count as missing: the data is not (all) in the landing area yet,
// and the reason says apply will bring it.
func statusOf(a providers.InstanceAction) Status {
	switch a {
	case providers.Landed:
		return Landed
	case providers.Blocked:
		return Blocked
	case providers.Quarantine:
		return Quarantined
	case providers.Awaiting:
		return Awaiting
	case providers.Wait:
		return NotDue
	case providers.Fetch, providers.Repair, providers.Request:
		return Missing
	default: // withdrawn, purge, expire and whatever ends extraction
		return NotExtracted
	}
}

// Counts tallies cells by status.
type Counts map[Status]int

// Problems is how many cells need attention (missing, blocked, quarantined).
func (c Counts) Problems() int { return c[Missing] + c[Blocked] + c[Quarantined] }

// Report is the whole coverage picture.
type Report struct {
	FormatVersion string     `json:"format_version"`
	AsOf          time.Time  `json:"as_of"`
	Lineage       string     `json:"lineage"`
	Serial        int64      `json:"serial"`
	Extracts      []*Extract `json:"extracts"`
	// Totals counts organisation-period cells over every extract.
	Totals Counts `json:"totals"`
}

// Extract is one extract instance: a source, a dataset and a schedule.
type Extract struct {
	Address   string   `json:"address"`
	Source    string   `json:"source"`
	Supplier  string   `json:"supplier"` // emis | systmone
	Dataset   string   `json:"dataset"`
	Frequency string   `json:"frequency"` // daily | weekly | monthly
	Periods   []Period `json:"periods"`
	Orgs      []*Org   `json:"organisations"`
	Counts    Counts   `json:"counts"` // organisation-period cells
}

// Period is one expected delivery as the plan sees it.
type Period struct {
	Key     string   `json:"key"` // yyyy-mm-dd, the period's first day
	Status  Status   `json:"status"`
	Action  string   `json:"action"`
	Reason  string   `json:"reason,omitempty"`
	Settled bool     `json:"settled,omitempty"`
	Batches []string `json:"batches,omitempty"` // landed batch ids
	Rows    int64    `json:"rows"`              // rows in the landed files
}

// Org is one organisation's row of cells, aligned with Extract.Periods.
type Org struct {
	ODS    string `json:"ods"`
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
	Counts Counts `json:"counts"`
	Cells  []Cell `json:"cells"`
}

// Cell is one organisation in one period.
type Cell struct {
	Status Status `json:"status"`
	Rows   int64  `json:"rows"`
	Reason string `json:"reason,omitempty"`
}

// Build joins the plan document with state. store may be nil (no state
// yet): every expected delivery then shows the plan's view only.
func Build(ctx context.Context, doc *reconcile.Doc, store state.Store) (*Report, error) {
	r := &Report{FormatVersion: FormatVersion, AsOf: doc.Created, Lineage: doc.Lineage, Serial: doc.Serial, Extracts: []*Extract{}, Totals: Counts{}}
	byAddr := map[string]*reconcile.ResourceChange{}
	for i := range doc.ResourceChanges {
		byAddr[doc.ResourceChanges[i].Address] = &doc.ResourceChanges[i]
	}
	orgInfo := organisations(doc)
	for i := range doc.ResourceChanges {
		rc := &doc.ResourceChanges[i]
		if rc.Type != "extract" {
			continue
		}
		attrs := attrsOf(rc)
		x := &Extract{Address: rc.Address, Source: refOf(attrs, "source"), Dataset: refOf(attrs, "dataset"), Counts: Counts{}}
		x.Supplier = supplierOf(x.Source)
		x.Frequency = str(attrsOf(byAddr[refOf(attrs, "schedule")]), "frequency")
		if x.Frequency == "" {
			x.Frequency = "daily"
		}
		for _, ic := range rc.Instances {
			// A run in the plan is a cell per period here.
			key := ic.Key
			for range ic.N() {
				x.Periods = append(x.Periods, Period{Key: key, Status: statusOf(ic.Action), Action: string(ic.Action), Reason: ic.Reason, Settled: ic.Settled})
				key = nextKey(x.Frequency, key)
			}
		}
		if err := x.fill(ctx, store, declaredOrgs(byAddr, x.Source), orgInfo); err != nil {
			return nil, err
		}
		r.Extracts = append(r.Extracts, x)
		for s, n := range x.Counts {
			r.Totals[s] += n
		}
	}
	sort.SliceStable(r.Extracts, func(i, j int) bool { return r.Extracts[i].Address < r.Extracts[j].Address })
	return r, nil
}

// orgDecl is what the configuration says about an organisation.
type orgDecl struct {
	name       string
	from, till string // permission window, yyyy-mm-dd, either may be empty
}

func organisations(doc *reconcile.Doc) map[string]orgDecl {
	out := map[string]orgDecl{}
	for i := range doc.ResourceChanges {
		rc := &doc.ResourceChanges[i]
		if rc.Type != "organisation" {
			continue
		}
		a := attrsOf(rc)
		ods := str(a, "ods")
		if ods == "" {
			ods = rc.Index
		}
		if ods == "" {
			ods = rc.Name
		}
		out[ods] = orgDecl{name: str(a, "name"), from: str(a, "permission_from"), till: str(a, "permission_until")}
	}
	return out
}

// declaredOrgs lists the ODS codes a source declares: an EMIS site's
// organisations, or a strategic report's organisation group's.
func declaredOrgs(byAddr map[string]*reconcile.ResourceChange, source string) []string {
	a := attrsOf(byAddr[source])
	if g := refOf(a, "organisation_group"); g != "" {
		a = attrsOf(byAddr[g])
	}
	var out []string
	if l, ok := a["organisations"].([]any); ok {
		for _, v := range l {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// fill reads the extract's deliveries and observations and lays out one
// row of cells per organisation.
func (x *Extract) fill(ctx context.Context, store state.Store, declared []string, info map[string]orgDecl) error {
	idx := map[string]int{}
	for i, p := range x.Periods {
		idx[p.Key] = i
	}
	// Per period: landed deliveries, and per organisation what they said.
	type seen struct {
		rows                                  int64
		present, disabled, deleted, notActive bool
	}
	perOrg := make([]map[string]*seen, len(x.Periods))
	withObs := make([]bool, len(x.Periods))
	names := map[string]string{}
	if store != nil {
		ds, err := store.Deliveries(ctx, x.Address)
		if err != nil {
			return err
		}
		landed := map[int64]int{}
		for _, d := range ds {
			i, ok := idx[d.Day]
			if !ok || d.Status != state.DeliveryLanded {
				continue
			}
			landed[d.ID] = i
			x.Periods[i].Batches = append(x.Periods[i].Batches, d.BatchID)
			fs, err := store.Files(ctx, d.ID)
			if err != nil {
				return err
			}
			for _, f := range fs {
				if f.Status == state.FileLanded {
					x.Periods[i].Rows += f.Rows
				}
			}
		}
		if len(landed) > 0 {
			obs, err := store.Observations(ctx, x.Source)
			if err != nil {
				return err
			}
			for _, o := range obs {
				i, ok := landed[o.DeliveryID]
				if !ok || o.ODS == "" {
					continue
				}
				withObs[i] = true
				if perOrg[i] == nil {
					perOrg[i] = map[string]*seen{}
				}
				s := perOrg[i][o.ODS]
				if s == nil {
					s = &seen{}
					perOrg[i][o.ODS] = s
				}
				s.present = true
				s.rows += o.Rows
				s.disabled = s.disabled || o.Disabled
				s.deleted = s.deleted || o.Deleted
				s.notActive = s.notActive || !o.IsActivated
				if o.Name != "" {
					names[o.ODS] = o.Name
				}
			}
		}
	}
	if len(declared) == 0 {
		// Without a declaration (a value known only after apply), the
		// deliveries say who is in the feed.
		set := map[string]bool{}
		for _, m := range perOrg {
			for ods := range m {
				set[ods] = true
			}
		}
		for ods := range set {
			declared = append(declared, ods)
		}
		sort.Strings(declared)
	}
	declared = dedupe(declared)
	single := len(declared) == 1
	for _, ods := range declared {
		o := &Org{ODS: ods, Name: info[ods].name, Counts: Counts{}, Cells: make([]Cell, len(x.Periods))}
		if o.Name == "" {
			o.Name = names[ods]
		}
		perm := info[ods]
		for i, p := range x.Periods {
			c := Cell{Status: p.Status, Reason: p.Reason}
			if s := perOrg[i][ods]; s != nil {
				c.Rows = s.rows // what landed, even while a file awaits repair
			}
			switch s := perOrg[i][ods]; {
			case p.Status == NotExtracted:
			case perm.till != "" && p.Key > perm.till, perm.from != "" && nextKey(x.Frequency, p.Key) <= perm.from:
				c = Cell{Status: NotExtracted, Reason: "outside the practice's permission"}
			case p.Status != Landed:
			case !withObs[i]:
				// A delivery without organisation files says nothing per
				// organisation; an organisation-specific site's rows are its one
				// organisation's.
				if single {
					c.Rows = p.Rows
				}
			case s == nil:
				c.Status, c.Reason = Missing, "not in the delivery"
			case s.deleted:
				c.Status, c.Reason = Missing, "deleted from the sharing agreement"
			case s.disabled:
				c.Status, c.Reason = Missing, "disabled in the sharing agreement"
			case s.notActive:
				c.Status, c.Reason = Missing, "not activated in the sharing agreement"
			}
			o.Cells[i] = c
			o.Counts[c.Status]++
			o.Rows += c.Rows
			x.Counts[c.Status]++
		}
		x.Orgs = append(x.Orgs, o)
	}
	return nil
}

// nextKey is the first day of the period after key.
func nextKey(freq, key string) string {
	t, err := time.Parse(time.DateOnly, key)
	if err != nil {
		return key
	}
	switch freq {
	case "weekly":
		t = t.AddDate(0, 0, 7)
	case "monthly":
		t = t.AddDate(0, 1, 0)
	default:
		t = t.AddDate(0, 0, 1)
	}
	return t.Format(time.DateOnly)
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func attrsOf(rc *reconcile.ResourceChange) map[string]any {
	if rc == nil {
		return nil
	}
	if rc.After != nil {
		return rc.After
	}
	return rc.Before
}

func refOf(a map[string]any, name string) string {
	if m, ok := a[name].(map[string]any); ok {
		return str(m, "address")
	}
	return ""
}

func str(a map[string]any, name string) string {
	s, _ := a[name].(string)
	return s
}

func supplierOf(source string) string {
	switch {
	case strings.HasPrefix(source, "emis_site."):
		return "emis"
	case strings.HasPrefix(source, "systmone_"):
		return "systmone"
	}
	return ""
}

// label is how a period key reads: a day, a week or a month.
func label(freq, key string) string {
	switch freq {
	case "weekly":
		return "w/c " + key
	case "monthly":
		if len(key) >= 7 {
			return key[:7]
		}
	}
	return key
}

// periodNoun names one period of a frequency.
func periodNoun(freq string) string {
	switch freq {
	case "weekly":
		return "week"
	case "monthly":
		return "month"
	}
	return "day"
}

// unit counts periods: "3 days", "1 week".
func unit(freq string, n int) string {
	return plural(n, periodNoun(freq), periodNoun(freq)+"s")
}
