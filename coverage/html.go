package coverage

import (
	_ "embed"
	"encoding/json"
	"html/template"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed page.html.tmpl
var pageSource string

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"thousands": thousands,
	"counts":    func(c Counts) string { return countsText(c, "") },
}).Parse(pageSource))

// Colours of the statuses, in legend order; the Chromium test reads them
// back from the screenshot, so cells are flat squares of exactly these.
var colours = map[Status]string{
	Landed:       "#2da44e",
	Missing:      "#d1242f",
	Blocked:      "#8250df",
	Quarantined:  "#e16f24",
	Awaiting:     "#d4a72c",
	NotDue:       "#d0d7de",
	NotExtracted: "#57606a",
}

// code is a status's one-character code in the page data.
func code(s Status) byte {
	for i, x := range Statuses {
		if x == s {
			return byte('0' + i)
		}
	}
	return byte('0' + len(Statuses) - 1)
}

// pageData is what the page's script draws from. It is compact because a
// national report holds 7,000 organisations × 365 days: statuses are one
// character per cell, row counts base 36, reasons an indexed table, and a
// cell carries its own reason only where it differs from its period's.
type pageData struct {
	Statuses []string      `json:"statuses"`
	Colours  []string      `json:"colours"`
	Extracts []pageExtract `json:"extracts"`
}

type pageExtract struct {
	Address   string      `json:"address"`
	Frequency string      `json:"frequency"`
	Keys      []string    `json:"keys"`
	Offset    int         `json:"offset"`  // weekday of the first key, Monday = 0
	Periods   string      `json:"periods"` // status codes
	PReasons  []int       `json:"preasons"`
	PRows     []int64     `json:"prows"`
	Reasons   []string    `json:"reasons"`
	Orgs      []pageOrg   `json:"orgs"`
	Groups    []pageGroup `json:"groups"`
}

type pageOrg struct {
	ODS    string `json:"o"`
	Name   string `json:"n"`
	Status string `json:"s"`           // status codes
	Rows   string `json:"r,omitempty"` // base-36 counts, comma-separated; empty when none
	// Why lists "cell:reason" pairs for cells whose reason differs from
	// their period's.
	Why string `json:"w,omitempty"`
}

type pageGroup struct {
	Name string `json:"name"`
	Orgs []int  `json:"orgs"` // indexes into Orgs, worst first
	Open bool   `json:"open"`
}

func (r *Report) pageData() pageData {
	d := pageData{}
	for _, s := range Statuses {
		d.Statuses = append(d.Statuses, string(s))
		d.Colours = append(d.Colours, colours[s])
	}
	for _, x := range r.Extracts {
		px := pageExtract{Address: x.Address, Frequency: x.Frequency, Keys: []string{}, PReasons: []int{}, PRows: []int64{}, Reasons: []string{""}, Orgs: []pageOrg{}, Groups: []pageGroup{}}
		reason := map[string]int{"": 0}
		intern := func(s string) int {
			i, ok := reason[s]
			if !ok {
				i = len(px.Reasons)
				reason[s] = i
				px.Reasons = append(px.Reasons, s)
			}
			return i
		}
		var ps strings.Builder
		for _, p := range x.Periods {
			px.Keys = append(px.Keys, p.Key)
			ps.WriteByte(code(p.Status))
			px.PReasons = append(px.PReasons, intern(p.Reason))
			px.PRows = append(px.PRows, p.Rows)
		}
		px.Periods = ps.String()
		if len(x.Periods) > 0 {
			if t, err := time.Parse(time.DateOnly, x.Periods[0].Key); err == nil {
				px.Offset = (int(t.Weekday()) + 6) % 7
			}
		}
		order := make([]*Org, len(x.Orgs))
		copy(order, x.Orgs)
		sort.SliceStable(order, func(i, j int) bool { return worse(order[i], order[j]) })
		groups := []pageGroup{{Name: "Needs attention"}, {Name: "Awaiting supplier"}, {Name: "Complete so far"}}
		for i, o := range order {
			var st, rows, why strings.Builder
			any := false
			for j, c := range o.Cells {
				st.WriteByte(code(c.Status))
				if j > 0 {
					rows.WriteByte(',')
				}
				if c.Rows != 0 {
					any = true
					rows.WriteString(strconv.FormatInt(c.Rows, 36))
				}
				if c.Reason != x.Periods[j].Reason {
					if why.Len() > 0 {
						why.WriteByte(',')
					}
					why.WriteString(strconv.Itoa(j) + ":" + strconv.Itoa(intern(c.Reason)))
				}
			}
			po := pageOrg{ODS: o.ODS, Name: o.Name, Status: st.String(), Why: why.String()}
			if any {
				po.Rows = rows.String()
			}
			px.Orgs = append(px.Orgs, po)
			g := 2
			switch {
			case o.Counts.Problems() > 0:
				g = 0
			case o.Counts[Awaiting] > 0:
				g = 1
			}
			groups[g].Orgs = append(groups[g].Orgs, i)
		}
		// Small reports open every group; a national one opens only the
		// worst non-empty group, drawn a page at a time.
		first := true
		for _, g := range groups {
			if len(g.Orgs) == 0 {
				continue
			}
			g.Open = len(x.Orgs) <= 200 || first
			first = false
			px.Groups = append(px.Groups, g)
		}
		d.Extracts = append(d.Extracts, px)
	}
	return d
}

// worse orders organisations worst first: most problem periods, then most
// awaiting the supplier, then by ODS code.
func worse(a, b *Org) bool {
	if pa, pb := a.Counts.Problems(), b.Counts.Problems(); pa != pb {
		return pa > pb
	}
	if a.Counts[Awaiting] != b.Counts[Awaiting] {
		return a.Counts[Awaiting] > b.Counts[Awaiting]
	}
	return a.ODS < b.ODS
}

type legendItem struct {
	Status Status
	Colour template.CSS
	Count  int64
}

// WriteHTML writes one self-contained page: styles, script and data are
// inline, and nothing is fetched from anywhere.
func (r *Report) WriteHTML(w io.Writer) error {
	data, err := json.Marshal(r.pageData()) // escapes <, > and & for HTML
	if err != nil {
		return err
	}
	var legend []legendItem
	for _, s := range Statuses {
		legend = append(legend, legendItem{Status: s, Colour: template.CSS(colours[s]), Count: int64(r.Totals[s])})
	}
	type extractView struct {
		*Extract
		Runs []runView
	}
	var xs []extractView
	for _, x := range r.Extracts {
		xs = append(xs, extractView{Extract: x, Runs: periodRuns(x)})
	}
	return pageTmpl.Execute(w, map[string]any{
		"AsOf":     r.AsOf.UTC().Format("2006-01-02 15:04 MST"),
		"Serial":   r.Serial,
		"Totals":   r.Totals,
		"Legend":   legend,
		"Extracts": xs,
		"Data":     template.JS(data),
	})
}

// runView is one line of an extract's expected deliveries, as in the text.
type runView struct {
	Range, What, Detail string
	Class               int
}

func periodRuns(x *Extract) []runView {
	var out []runView
	for _, run := range runs(x.Periods, func(p Period) (string, string) { return periodWhat(p), p.Reason }) {
		var rows int64
		var batches int
		for _, p := range x.Periods[run.from:run.to] {
			rows += p.Rows
			batches += len(p.Batches)
		}
		detail := run.reason
		st := x.Periods[run.from].Status
		if st == Landed {
			detail = plural(batches, "batch", "batches") + ", " + thousands(rows) + " rows"
		}
		out = append(out, runView{Range: rangeLabel(x, run), What: run.what, Detail: detail, Class: int(code(st) - '0')})
	}
	return out
}
