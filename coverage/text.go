package coverage

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// WriteJSON writes the report as its versioned JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report as people read it: per extract, the expected
// deliveries in runs of the same status and reason, then per organisation
// the same, with row counts.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "Coverage as of %s (state serial %d)\n", r.AsOf.UTC().Format("2006-01-02 15:04 MST"), r.Serial)
	if len(r.Extracts) == 0 {
		fmt.Fprintln(bw, "\nNo extracts are declared.")
	}
	for _, x := range r.Extracts {
		writeExtract(bw, x)
	}
	fmt.Fprintf(bw, "\nTotal: %s.\n", countsText(r.Totals, "organisation-period"))
	return bw.Flush()
}

func writeExtract(w io.Writer, x *Extract) {
	fmt.Fprintf(w, "\n%s: %s, %s, %s", x.Address, orNone(x.Source), orNone(x.Dataset), x.Frequency)
	if n := len(x.Periods); n > 0 {
		fmt.Fprintf(w, ", %s from %s to %s", unit(x.Frequency, n), x.Periods[0].Key, x.Periods[n-1].Key)
	}
	fmt.Fprintln(w)
	if len(x.Periods) == 0 {
		fmt.Fprintln(w, "  No deliveries expected yet.")
		return
	}
	width := 0
	for _, run := range runs(x.Periods, func(p Period) (string, string) { return periodWhat(p), p.Reason }) {
		if n := len(rangeLabel(x, run)); n > width {
			width = n
		}
	}
	for _, run := range runs(x.Periods, func(p Period) (string, string) { return periodWhat(p), p.Reason }) {
		var rows int64
		var batches int
		for _, p := range x.Periods[run.from:run.to] {
			rows += p.Rows
			batches += len(p.Batches)
		}
		detail := run.reason
		if detail == string(x.Periods[run.from].Status) {
			detail = ""
		}
		if x.Periods[run.from].Status == Landed {
			detail = fmt.Sprintf("%s, %s rows", plural(batches, "batch", "batches"), thousands(rows))
		}
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-*s  %-*s  %s", width, rangeLabel(x, run), 28, run.what, detail), " "))
	}
	if len(x.Orgs) == 0 {
		fmt.Fprintln(w, "  No organisations declared or observed.")
		return
	}
	fmt.Fprintf(w, "  %s, %s\n", plural(len(x.Orgs), "organisation", "organisations"), countsText(x.Counts, "organisation-"+periodNoun(x.Frequency)))
	for _, o := range x.Orgs {
		fmt.Fprintf(w, "  %s  %s: %s; %s rows\n", o.ODS, orNone(o.Name), countsText(o.Counts, ""), thousands(o.Rows))
		cells := make([]Period, len(o.Cells))
		for i, c := range o.Cells {
			cells[i] = Period{Key: x.Periods[i].Key, Status: c.Status, Reason: c.Reason, Rows: c.Rows}
		}
		for _, run := range runs(cells, func(p Period) (string, string) { return string(p.Status), p.Reason }) {
			var rows int64
			for _, c := range cells[run.from:run.to] {
				rows += c.Rows
			}
			detail := run.reason
			if detail == run.what {
				detail = ""
			}
			if cells[run.from].Status == Landed {
				detail = thousands(rows) + " rows"
			}
			fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("    %-*s  %-*s  %s", width, rangeLabel(x, run), 17, run.what, detail), " "))
		}
	}
}

// periodWhat is the status, with the plan's action when it says more
// (missing: fetch, repair or request).
func periodWhat(p Period) string {
	s := string(p.Status)
	if p.Action != "" && p.Action != s && p.Status != NotDue && p.Status != Quarantined && p.Status != Landed {
		s += " (" + p.Action + ")"
	}
	return s
}

type run struct {
	from, to     int
	what, reason string
}

// runs groups consecutive periods that read the same.
func runs(ps []Period, key func(Period) (string, string)) []run {
	var out []run
	for i, p := range ps {
		what, why := key(p)
		if n := len(out); n > 0 && out[n-1].what == what && out[n-1].reason == why {
			out[n-1].to = i + 1
			continue
		}
		out = append(out, run{from: i, to: i + 1, what: what, reason: why})
	}
	return out
}

func rangeLabel(x *Extract, r run) string {
	first := label(x.Frequency, x.Periods[r.from].Key)
	if r.to-r.from == 1 {
		return first
	}
	return first + ".." + label(x.Frequency, x.Periods[r.to-1].Key)
}

// countsText reads "12 landed, 2 missing" in legend order.
func countsText(c Counts, noun string) string {
	var parts []string
	total := 0
	for _, s := range Statuses {
		if c[s] > 0 {
			parts = append(parts, thousands(int64(c[s]))+" "+string(s))
			total += c[s]
		}
	}
	if len(parts) == 0 {
		return "nothing expected yet"
	}
	if noun == "" {
		return strings.Join(parts, ", ")
	}
	return fmt.Sprintf("%s: %s", plural(total, noun, noun+"s"), strings.Join(parts, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(int64(n)) + " " + many
}

// thousands formats 1234567 as 1,234,567.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
