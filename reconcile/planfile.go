package reconcile

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/im1dev/im1/config"
	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/state"
)

// FormatVersion of the JSON plan document and saved plan files. A minor
// bump is additive; a major bump is breaking. 2.0: an instance entry may
// stand for a run of periods (through, count).
const FormatVersion = "2.0"

// Doc is the versioned JSON form of a plan: `plan -json`, `show -json` and
// saved plan files share it. Sensitive values are never in it.
type Doc struct {
	FormatVersion   string           `json:"format_version"`
	Lineage         string           `json:"lineage"`
	Serial          int64            `json:"serial"`
	ConfigHash      string           `json:"config_hash"`
	Created         time.Time        `json:"created"`
	Targets         []string         `json:"targets,omitempty"`
	RefreshOnly     bool             `json:"refresh_only,omitempty"`
	Errored         bool             `json:"errored"`
	ResourceChanges []ResourceChange `json:"resource_changes"`
	Drift           []DocDiagnostic  `json:"drift"`
	Diagnostics     []DocDiagnostic  `json:"diagnostics"`
	Summary         Summary          `json:"summary"`
}

// ResourceChange is one resource instance in the JSON plan.
type ResourceChange struct {
	Address      string           `json:"address"`
	Type         string           `json:"type"`
	Name         string           `json:"name"`
	Index        string           `json:"index,omitempty"`
	Action       providers.Action `json:"action"`
	Reason       string           `json:"reason,omitempty"`
	Before       map[string]any   `json:"before"`
	After        map[string]any   `json:"after"`
	AfterUnknown []string         `json:"after_unknown,omitempty"`
	Sensitive    []string         `json:"sensitive,omitempty"`
	Instances    []InstanceDoc    `json:"instances,omitempty"`
	DependsOn    []string         `json:"depends_on,omitempty"`
}

// InstanceDoc is one expected delivery of an extract.
type InstanceDoc struct {
	Key     string                   `json:"key"`
	Action  providers.InstanceAction `json:"action"`
	Reason  string                   `json:"reason,omitempty"`
	Settled bool                     `json:"settled,omitempty"`
	// Through and Count are set when the entry stands for a run of
	// consecutive periods from Key through Through (never for work).
	Through string `json:"through,omitempty"`
	Count   int    `json:"count,omitempty"`
}

// N is the number of periods the entry stands for.
func (ic InstanceDoc) N() int { return max(ic.Count, 1) }

// DocDiagnostic is a diagnostic in JSON form.
type DocDiagnostic struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail,omitempty"`
	Range    *struct {
		Filename string `json:"filename"`
		Line     int    `json:"line"`
		Column   int    `json:"column"`
	} `json:"range,omitempty"`
}

// Summary counts the plan the way its last line does.
type Summary struct {
	Add       int            `json:"add"`
	Change    int            `json:"change"`
	Destroy   int            `json:"destroy"`
	Extracts  map[string]int `json:"extracts"`
	Settled   int            `json:"settled"`
	DriftErrs int            `json:"drift_errors"`
	DriftWarn int            `json:"drift_warnings"`
}

// Document renders the plan as its JSON document.
func (p *Plan) Document() *Doc { return p.document(false) }

// Outline is the document without the attribute values of resources that
// do not change, which RenderPlan never shows: encoding 14,000 unchanged
// values took a tenth of a national-scale text plan.
func (p *Plan) Outline() *Doc { return p.document(true) }

func (p *Plan) document(outline bool) *Doc {
	d := &Doc{
		FormatVersion: FormatVersion, Lineage: p.Lineage, Serial: p.Serial, ConfigHash: p.ConfigHash,
		Created: p.Created, Targets: p.Targets, RefreshOnly: p.RefreshOnly, Errored: p.Errored(),
		ResourceChanges: []ResourceChange{}, Drift: docDiags(p.Drift), Diagnostics: docDiags(p.Diagnostics),
	}
	for _, c := range p.Changes {
		d.ResourceChanges = append(d.ResourceChanges, resourceChange(c, outline && c.Action == providers.NoOp))
	}
	d.Summary = summarise(d)
	return d
}

func summarise(d *Doc) Summary {
	s := Summary{Extracts: map[string]int{}}
	for _, rc := range d.ResourceChanges {
		switch rc.Action {
		case providers.Create:
			s.Add++
		case providers.Update, providers.Rotate:
			s.Change++
		case providers.Destroy:
			s.Destroy++
		case providers.Replace:
			s.Add++
			s.Destroy++
		}
		for _, ic := range rc.Instances {
			if ic.Settled {
				s.Settled += ic.N()
			}
			s.Extracts[string(ic.Action)] += ic.N()
		}
	}
	for _, x := range d.Drift {
		if x.Severity == "error" {
			s.DriftErrs++
		} else {
			s.DriftWarn++
		}
	}
	return s
}

func docDiags(diags hcl.Diagnostics) []DocDiagnostic {
	out := []DocDiagnostic{}
	for _, x := range diags {
		dd := DocDiagnostic{Severity: "warning", Summary: x.Summary, Detail: x.Detail}
		if x.Severity == hcl.DiagError {
			dd.Severity = "error"
		}
		if x.Subject != nil {
			dd.Range = &struct {
				Filename string `json:"filename"`
				Line     int    `json:"line"`
				Column   int    `json:"column"`
			}{x.Subject.Filename, x.Subject.Start.Line, x.Subject.Start.Column}
		}
		out = append(out, dd)
	}
	return out
}

// Empty reports a document with nothing for apply to do.
func (d *Doc) Empty() bool {
	for _, rc := range d.ResourceChanges {
		if rc.Action != providers.NoOp {
			return false
		}
		for _, ic := range rc.Instances {
			if Actionable(providers.InstanceChange{Action: ic.Action, Settled: ic.Settled}) {
				return false
			}
		}
	}
	return true
}

// Hash is the plan's identity for the audit log.
func (d *Doc) Hash() string {
	b, _ := json.Marshal(d)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// WritePlanFile saves a plan for a later `apply PLANFILE`. It holds no
// secrets: values marked sensitive are left out, and private keys are
// never part of a plan.
func WritePlanFile(path string, d *Doc) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return err
	}
	tmp := path + ".partial"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Clean(path))
}

// ReadPlanFile loads a saved plan.
func ReadPlanFile(path string) (*Doc, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Doc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s is not an im1 plan file: %w", path, err)
	}
	if d.FormatVersion == "" || d.FormatVersion[0] != FormatVersion[0] {
		return nil, fmt.Errorf("%s has plan format %q; this im1 reads %s.x", path, d.FormatVersion, FormatVersion[:1])
	}
	return &d, nil
}

// ErrStalePlan is returned when a saved plan no longer matches.
var ErrStalePlan = errors.New("saved plan is stale")

// CheckSaved refuses a saved plan whose state lineage, serial, or
// configuration and variables moved since it was made.
func CheckSaved(d *Doc, meta state.Meta, cfg *config.Config) error {
	switch {
	case d.Errored:
		return errors.New("cannot apply a failed plan")
	case d.Lineage != "" && meta.Lineage != d.Lineage:
		return fmt.Errorf("%w: saved plan does not match the given state (plan lineage %s, state lineage %s)", state.ErrLineage, d.Lineage, meta.Lineage)
	case meta.Serial != d.Serial:
		return fmt.Errorf("%w: state changed since the plan was made (serial %d, now %d); plan again", ErrStalePlan, d.Serial, meta.Serial)
	case cfg.Hash != d.ConfigHash:
		return fmt.Errorf("%w: configuration or variables changed since the plan was made; plan again", ErrStalePlan)
	}
	return nil
}

// Restrict keeps only what a saved plan contained, so applying it does
// what was reviewed and no more: the same resources, and of each
// extract's expected deliveries only those with the same action the saved
// plan showed (a delivery that arrived, or a retention that ran out, since
// the plan is left for the next plan to show).
func (p *Plan) Restrict(d *Doc) {
	want := map[string]*ResourceChange{}
	for i := range d.ResourceChanges {
		want[d.ResourceChanges[i].Address] = &d.ResourceChanges[i]
	}
	var out []*Change
	for _, c := range p.Changes {
		rc := want[c.Addr]
		if rc == nil {
			continue
		}
		c.allowed = map[string]providers.InstanceAction{}
		for _, ic := range rc.Instances {
			c.allowed[ic.Key] = ic.Action
		}
		c.Instances = c.allowedInstances(c.Instances)
		out = append(out, c)
	}
	p.Changes = out
}

// allowedInstances filters instance changes to those a saved plan allowed.
func (c *Change) allowedInstances(ics []providers.InstanceChange) []providers.InstanceChange {
	if c.allowed == nil {
		return ics
	}
	var out []providers.InstanceChange
	for _, ic := range ics {
		if a, ok := c.allowed[ic.Key]; ok && a == ic.Action {
			out = append(out, ic)
		}
	}
	return out
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
