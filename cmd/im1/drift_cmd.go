package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/reconcile"
)

// DriftReport is `im1 drift -json`: only where the real world contradicts
// state. Pending configuration changes and routine work (today's fetch, a
// delivery not yet due) are not drift.
type DriftReport struct {
	FormatVersion string                    `json:"format_version"`
	Drift         bool                      `json:"drift"`
	Findings      []reconcile.DocDiagnostic `json:"findings"`
	Instances     []DriftInstance           `json:"instances"`
	Settled       []DriftInstance           `json:"settled"`
}

// DriftInstance is an extract instance whose state the world contradicts.
type DriftInstance struct {
	Address string                   `json:"address"`
	Key     string                   `json:"key"`
	Through string                   `json:"through,omitempty"` // a run of periods, as in the plan
	Count   int                      `json:"count,omitempty"`
	Action  providers.InstanceAction `json:"action"`
	Reason  string                   `json:"reason"`
}

// keys renders the instance key, or a run's first and last keys.
func (i DriftInstance) keys() string {
	if i.Through != "" {
		return fmt.Sprintf("%q..%q", i.Key, i.Through)
	}
	return strconv.Quote(i.Key)
}

// driftActions are the instance actions that mean the world moved: landed
// data gone or changed, a delivery missing past its tolerance, a chain
// broken by a missing delta.
var driftActions = map[providers.InstanceAction]bool{
	providers.Repair: true, providers.Request: true, providers.Blocked: true,
}

func (c *cli) driftCommand() *ffcli.Command {
	fs := c.newFlags("drift")
	var rf runFlags
	fs.Var(varFlag{args: &rf.vars}, "var", "set a variable (repeatable)")
	fs.Var(varFlag{args: &rf.vars, file: true}, "var-file", "read variables from a file (repeatable)")
	asJSON := fs.Bool("json", false, "JSON report")
	return &ffcli.Command{
		Name: "drift", ShortUsage: "im1 drift [-json]", FlagSet: fs,
		ShortHelp: "Report where the suppliers' sites and the landed files contradict state (read-only).",
		LongHelp: "drift observes the sites, the gateway and the landed files like plan does, and reports only\n" +
			"what the real world contradicts: sharing-agreement changes, unknown files, landed files missing\n" +
			"or changed, deliveries missing past their tolerance, broken delta chains. Pending configuration\n" +
			"changes and routine fetches are not drift. Exit codes: 0 no drift, 1 error, 2 drift.",
		Exec: func(ctx context.Context, args []string) error {
			rf.refresh = true
			e, plan, err := c.planReadOnly(ctx, &rf, "drift")
			if err != nil {
				return err
			}
			defer e.Close()
			doc := plan.Document()
			rep := DriftReport{FormatVersion: "2.0", Findings: doc.Drift, Instances: []DriftInstance{}, Settled: []DriftInstance{}}
			for _, rc := range doc.ResourceChanges {
				for _, ic := range rc.Instances {
					di := DriftInstance{Address: rc.Address, Key: ic.Key, Through: ic.Through, Count: ic.Count, Action: ic.Action, Reason: ic.Reason}
					switch {
					case ic.Settled:
						rep.Settled = append(rep.Settled, di)
					case driftActions[ic.Action]:
						rep.Instances = append(rep.Instances, di)
					}
				}
			}
			rep.Drift = len(rep.Findings) > 0 || len(rep.Instances) > 0
			if *asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				_ = enc.Encode(rep)
			} else {
				for _, f := range rep.Findings {
					fmt.Fprintf(c.stdout, "%s: %s\n", f.Severity, f.Summary)
					if f.Detail != "" {
						fmt.Fprintf(c.stdout, "    %s\n", f.Detail)
					}
				}
				for _, i := range rep.Instances {
					fmt.Fprintf(c.stdout, "%s %s[%s]: %s\n", i.Action, i.Address, i.keys(), i.Reason)
				}
				for _, i := range rep.Settled {
					fmt.Fprintf(c.stdout, "settled: %s %s[%s]: %s\n", i.Action, i.Address, i.keys(), i.Reason)
				}
				if !rep.Drift {
					fmt.Fprintln(c.stdout, "No drift: the suppliers' sites and the landed files agree with state.")
				}
			}
			if rep.Drift {
				return exit(2)
			}
			return nil
		},
	}
}
