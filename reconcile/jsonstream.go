package reconcile

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
)

// JSONStream writes the plan's JSON document as planning goes: the header,
// each resource change (with all its instances) the moment it is planned,
// then the tail with diagnostics and the summary. Its memory is one
// resource change, whatever the number of expected deliveries; the result
// decodes to the same document as Plan.Document.
type JSONStream struct {
	w       *bufio.Writer
	n       int
	sum     Summary
	err     error
	started bool
}

// NewJSONStream starts a document for the engine's state and configuration.
func NewJSONStream(w io.Writer, e *Engine) *JSONStream {
	s := &JSONStream{w: bufio.NewWriterSize(w, 64<<10), sum: Summary{Extracts: map[string]int{}}}
	head := struct {
		FormatVersion string   `json:"format_version"`
		Lineage       string   `json:"lineage"`
		Serial        int64    `json:"serial"`
		ConfigHash    string   `json:"config_hash"`
		Created       any      `json:"created"`
		Targets       []string `json:"targets,omitempty"`
		RefreshOnly   bool     `json:"refresh_only,omitempty"`
	}{FormatVersion, e.meta.Lineage, e.meta.Serial, e.cfg.Hash, e.opts.Now().UTC(), e.opts.Targets, e.opts.RefreshOnly}
	b, err := json.Marshal(head)
	s.err = err
	if err == nil {
		// Reopen the object to append the streamed array and the tail.
		s.write(strings.TrimSuffix(string(b), "}") + `,"resource_changes":[`)
		s.started = true
	}
	return s
}

func (s *JSONStream) write(str string) {
	if s.err == nil {
		_, s.err = s.w.WriteString(str)
	}
}

// Change writes one planned change (Options.Stream).
func (s *JSONStream) Change(c *Change) error {
	rc := resourceChange(c, false)
	tmp := &Doc{ResourceChanges: []ResourceChange{rc}}
	part := summarise(tmp)
	s.sum.Add += part.Add
	s.sum.Change += part.Change
	s.sum.Destroy += part.Destroy
	s.sum.Settled += part.Settled
	for k, v := range part.Extracts {
		s.sum.Extracts[k] += v
	}
	b, err := json.Marshal(rc)
	if err != nil {
		return err
	}
	if s.n > 0 {
		s.write(",\n")
	} else {
		s.write("\n")
	}
	s.n++
	s.write(string(b))
	return s.err
}

// Finish writes the tail: errored, drift, diagnostics and the summary.
func (s *JSONStream) Finish(p *Plan) error {
	if !s.started {
		return s.err
	}
	drift, diags := docDiags(p.Drift), docDiags(p.Diagnostics)
	for _, x := range drift {
		if x.Severity == "error" {
			s.sum.DriftErrs++
		} else {
			s.sum.DriftWarn++
		}
	}
	tail := struct {
		Errored     bool            `json:"errored"`
		Drift       []DocDiagnostic `json:"drift"`
		Diagnostics []DocDiagnostic `json:"diagnostics"`
		Summary     Summary         `json:"summary"`
	}{p.Errored(), drift, diags, s.sum}
	b, err := json.Marshal(tail)
	if err != nil {
		return err
	}
	s.write("\n]," + strings.TrimPrefix(string(b), "{") + "\n")
	if s.err == nil {
		s.err = s.w.Flush()
	}
	return s.err
}

// Summary is what was counted while streaming.
func (s *JSONStream) Summary() Summary { return s.sum }

// resourceChange is one change in its JSON form; without values, its
// attributes are left out.
func resourceChange(c *Change, noValues bool) ResourceChange {
	rc := ResourceChange{Address: c.Addr, Type: c.Type, Name: nameOf(c.Addr), Index: instanceKeyOf(c.Addr),
		Action: c.Action, Reason: c.Reason, Sensitive: c.Sensitive, DependsOn: c.Deps}
	if !noValues {
		rc.Before, _ = jsonAttrs(c.Before, c.Sensitive)
		rc.After, rc.AfterUnknown = jsonAttrs(c.After, c.Sensitive)
	}
	for _, ic := range c.Instances {
		rc.Instances = append(rc.Instances, InstanceDoc{Key: ic.Key, Action: ic.Action, Reason: ic.Reason, Settled: ic.Settled,
			Through: ic.Through, Count: ic.Count})
	}
	return rc
}
