package reconcile

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/im1dev/im1/providers"
)

// RenderOptions tune the human plan output.
type RenderOptions struct {
	// Verbose lists every extract instance instead of collapsing ranges.
	Verbose bool
}

var symbols = map[providers.Action]string{
	providers.Create:  "  +",
	providers.Update:  "  ~",
	providers.Rotate:  "  ~",
	providers.Destroy: "  -",
	providers.Replace: "-/+",
}

var verbs = map[providers.Action]string{
	providers.Create:  "will be created",
	providers.Update:  "will be updated in place",
	providers.Rotate:  "will be rotated (a successor key is made; the current one is kept for decryption)",
	providers.Destroy: "will be destroyed",
	providers.Replace: "must be replaced",
}

// RenderPlan writes the plan as people read it, in Terraform's style.
func RenderPlan(w io.Writer, d *Doc, o RenderOptions) {
	var changes, extracts []ResourceChange
	for _, rc := range d.ResourceChanges {
		if rc.Action != providers.NoOp {
			changes = append(changes, rc)
		}
		if hasShownInstances(rc, o) {
			extracts = append(extracts, rc)
		}
	}
	if len(d.Drift) > 0 {
		fmt.Fprintf(w, "\nThe suppliers' deliveries contradict what im1 knows:\n\n")
		for _, x := range d.Drift {
			mark := "warning"
			if x.Severity == "error" {
				mark = "error"
			}
			fmt.Fprintf(w, "  ! %s: %s\n", mark, x.Summary)
			if x.Detail != "" {
				for _, line := range strings.Split(x.Detail, "\n") {
					fmt.Fprintf(w, "      %s\n", line)
				}
			}
		}
	}
	if len(changes) == 0 && len(extracts) == 0 {
		if d.Empty() {
			fmt.Fprintf(w, "\nNo changes. The configuration, state and the suppliers' deliveries agree.\n")
		}
		summaryLine(w, d)
		return
	}
	if len(changes) > 0 {
		fmt.Fprintf(w, "\nim1 will perform the following actions:\n")
		for _, rc := range changes {
			renderChange(w, rc)
		}
	}
	if len(extracts) > 0 {
		fmt.Fprintf(w, "\nExpected deliveries:\n")
		for _, rc := range extracts {
			renderInstances(w, rc, o)
		}
	}
	summaryLine(w, d)
}

func summaryLine(w io.Writer, d *Doc) {
	s := d.Summary
	fmt.Fprintf(w, "\nPlan: %d to add, %d to change, %d to destroy. Extracts: %d to fetch, %d to repair, %d blocked",
		s.Add, s.Change, s.Destroy, s.Extracts[string(providers.Fetch)], s.Extracts[string(providers.Repair)], s.Extracts[string(providers.Blocked)])
	// The rarer kinds of work are counted only when there is some.
	for _, k := range []struct {
		a    providers.InstanceAction
		what string
	}{{providers.Request, "to request again"}, {providers.Expire, "to expire"}, {providers.Purge, "to purge"}} {
		if n := s.Extracts[string(k.a)]; n > 0 {
			fmt.Fprintf(w, ", %d %s", n, k.what)
		}
	}
	fmt.Fprintf(w, ".\n")
	if s.Settled > 0 {
		fmt.Fprintf(w, "Settled (reported, not changes): %d.\n", s.Settled)
	}
}

func renderChange(w io.Writer, rc ResourceChange) {
	head := fmt.Sprintf("%s %s", rc.Address, verbs[rc.Action])
	fmt.Fprintf(w, "\n  # %s\n", head)
	if rc.Reason != "" {
		fmt.Fprintf(w, "  # (%s)\n", rc.Reason)
	}
	label := fmt.Sprintf("%s %q", rc.Type, rc.Name)
	if rc.Index != "" {
		label += fmt.Sprintf(" [%q]", rc.Index)
	}
	fmt.Fprintf(w, "%s %s {\n", symbols[rc.Action], label)
	if rc.Action == providers.Destroy {
		fmt.Fprintf(w, "    }\n")
		return
	}
	names := map[string]bool{}
	for k := range rc.After {
		names[k] = true
	}
	for k := range rc.Before {
		names[k] = true
	}
	for _, k := range rc.AfterUnknown {
		names[k] = true
	}
	for _, k := range rc.Sensitive {
		names[k] = true
	}
	delete(names, "address")
	keys := make([]string, 0, len(names))
	width := 0
	for k := range names {
		keys = append(keys, k)
		if len(k) > width {
			width = len(k)
		}
	}
	sort.Strings(keys)
	unknown := map[string]bool{}
	for _, k := range rc.AfterUnknown {
		unknown[k] = true
	}
	sensitive := map[string]bool{}
	for _, k := range rc.Sensitive {
		sensitive[k] = true
	}
	hidden := 0
	for _, k := range keys {
		b, hadB := rc.Before[k]
		a, hasA := rc.After[k]
		pad := strings.Repeat(" ", width-len(k))
		switch {
		case sensitive[k]:
			if rc.Action == providers.Create {
				fmt.Fprintf(w, "      + %s%s = (sensitive value)\n", k, pad)
			}
		case unknown[k]:
			sym := "+"
			if hadB {
				sym = "~"
			}
			if hadB {
				fmt.Fprintf(w, "      %s %s%s = %s -> (known after apply)\n", sym, k, pad, formatValue(b))
			} else {
				fmt.Fprintf(w, "      %s %s%s = (known after apply)\n", sym, k, pad)
			}
		case rc.Before == nil || rc.Action == providers.Create:
			if hasA {
				fmt.Fprintf(w, "      + %s%s = %s\n", k, pad, formatValue(a))
			}
		case hadB && hasA && jsonEqual(a, b):
			hidden++
		case hadB && hasA:
			fmt.Fprintf(w, "      ~ %s%s = %s -> %s\n", k, pad, formatValue(b), formatValue(a))
		case hasA:
			fmt.Fprintf(w, "      + %s%s = %s\n", k, pad, formatValue(a))
		case hadB:
			fmt.Fprintf(w, "      - %s%s = %s -> null\n", k, pad, formatValue(b))
		}
	}
	if hidden > 0 {
		fmt.Fprintf(w, "        # (%d unchanged attributes hidden)\n", hidden)
	}
	fmt.Fprintf(w, "    }\n")
}

func hasShownInstances(rc ResourceChange, o RenderOptions) bool {
	for _, ic := range rc.Instances {
		if o.Verbose || ic.Action != providers.Landed {
			return true
		}
	}
	return false
}

// renderInstances collapses consecutive instances with the same action and
// reason into ranges, so national-scale plans stay readable.
func renderInstances(w io.Writer, rc ResourceChange, o RenderOptions) {
	counts := map[providers.InstanceAction]int{}
	for _, ic := range rc.Instances {
		counts[ic.Action] += ic.N()
	}
	var parts []string
	for _, a := range []providers.InstanceAction{providers.Fetch, providers.Repair, providers.Request, providers.Blocked, providers.Quarantine, providers.Awaiting, providers.Purge, providers.Expire, providers.Wait, providers.Withdrawn, providers.Landed} {
		if n := counts[a]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, a))
		}
	}
	fmt.Fprintf(w, "\n  # %s: %s\n", rc.Address, strings.Join(parts, ", "))
	type run struct {
		from, to string
		n        int
		ic       InstanceDoc
	}
	var runs []run
	for _, ic := range rc.Instances {
		if !o.Verbose && ic.Action == providers.Landed {
			if len(runs) > 0 {
				runs = append(runs, run{}) // a landed instance breaks a range
			}
			continue
		}
		to := ic.Key
		if ic.Through != "" {
			to = ic.Through // the plan already made it a run
		}
		if l := len(runs); !o.Verbose && l > 0 && runs[l-1].n > 0 && runs[l-1].ic.Action == ic.Action && runs[l-1].ic.Reason == ic.Reason {
			runs[l-1].to = to
			runs[l-1].n += ic.N()
			continue
		}
		runs = append(runs, run{from: ic.Key, to: to, n: ic.N(), ic: ic})
	}
	for _, r := range runs {
		if r.n == 0 {
			continue
		}
		key := strconv.Quote(r.from)
		if r.n > 1 {
			key = fmt.Sprintf("%q..%q", r.from, r.to)
		}
		line := fmt.Sprintf("      %-10s %s[%s]", r.ic.Action, rc.Address, key)
		if r.ic.Reason != "" {
			line += ": " + r.ic.Reason
		}
		if r.n > 1 {
			line += fmt.Sprintf(" (%d)", r.n)
		}
		fmt.Fprintln(w, line)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// formatValue renders a JSON value the way HCL would write it; objects that
// carry an address (references to other blocks) print as that address.
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = formatValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		if a, ok := x["address"].(string); ok {
			return a
		}
		keys := sortedKeys(x)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			if x[k] == nil {
				continue
			}
			parts = append(parts, k+" = "+formatValue(x[k]))
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}
