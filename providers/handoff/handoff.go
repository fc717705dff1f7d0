// Package handoff writes the documents im1 hands to a supplier (a public
// key, a strategic-report sheet, a re-extract request) into the handoff
// directory: handoff/<supplier>/<source>/<kind>-<id>.json, a versioned JSON
// document with a human-readable twin beside it. Suppliers (or simulators)
// answer in <kind>-<id>.ack.json; im1 marks a handoff done only when
// deliveries prove it.
package handoff

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Version of the handoff document format.
const Version = 1

// Kinds of handoff.
const (
	PublicKey        = "public_key"
	ReportConfig     = "report_config"
	ReextractRequest = "reextract_request"
)

// Doc is a handoff document.
type Doc struct {
	Version int             `json:"version"`
	Kind    string          `json:"kind"`
	ID      string          `json:"id"`
	Source  string          `json:"source"`
	Created time.Time       `json:"created"`
	Payload json.RawMessage `json:"payload"`
}

// Ack is a supplier's answer.
type Ack struct {
	Version int       `json:"version"`
	Status  string    `json:"status"` // accepted, done, rejected
	Note    string    `json:"note,omitempty"`
	Time    time.Time `json:"time"`
	// FullBatch names the batch a supplier sent as a full re-extract in
	// answer to a request (EMIS has no full/delta flag in its files): it
	// starts the delta chain again.
	FullBatch string `json:"full_batch,omitempty"`
}

// FullBatches lists the batches suppliers declared full in their answers
// to the re-extract requests in a folder.
func FullBatches(dir string) (map[string]bool, error) {
	docs, err := List(dir, ReextractRequest)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, d := range docs {
		if ack, _ := ReadAck(dir, ReextractRequest, d.ID); ack != nil && ack.FullBatch != "" {
			out[ack.FullBatch] = true
		}
	}
	return out, nil
}

// Dir is the folder of one source's handoffs.
func Dir(root, supplier, sourceDir string) string {
	return filepath.Join(root, supplier, sourceDir)
}

// Write stores a handoff atomically, with its twin (e.g. ".asc" or ".md")
// when twin is not nil. It returns the JSON document's path.
func Write(dir, kind, id, source string, created time.Time, payload any, twinExt string, twin []byte) (string, error) {
	if strings.ContainsAny(id, `/\`) || strings.Contains(id, "..") {
		return "", fmt.Errorf("handoff id %q is not a plain name", id)
	}
	p, err := json.Marshal(payload)
	if err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(Doc{Version: Version, Kind: kind, ID: id, Source: source, Created: created.UTC(), Payload: p}, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	base := filepath.Join(dir, kind+"-"+id)
	if twin != nil {
		if err := writeAtomic(base+twinExt, twin); err != nil {
			return "", err
		}
	}
	if err := writeAtomic(base+".json", append(b, '\n')); err != nil {
		return "", err
	}
	return base + ".json", nil
}

// ReadAck returns the supplier's answer to a handoff, nil when none.
func ReadAck(dir, kind, id string) (*Ack, error) {
	b, err := os.ReadFile(filepath.Join(dir, kind+"-"+id+".ack.json"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var a Ack
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("handoff ack %s-%s: %w", kind, id, err)
	}
	return &a, nil
}

// List returns the handoffs of one kind in a folder, oldest first.
func List(dir, kind string) ([]Doc, error) {
	matches, err := filepath.Glob(filepath.Join(dir, kind+"-*.json"))
	if err != nil {
		return nil, err
	}
	var out []Doc
	for _, m := range matches {
		if strings.HasSuffix(m, ".ack.json") {
			continue
		}
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		var d Doc
		if err := json.Unmarshal(b, &d); err != nil || d.Version != Version || d.Kind != kind {
			continue // not ours, or a future version: leave it alone
		}
		out = append(out, d)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// Request is an unanswered re-extract request as a supplier reads it.
type Request struct {
	ID  string
	Day time.Time
}

// OpenRequests lists the re-extract requests in a folder that have no
// answer yet, oldest first: what a supplier's service desk works through.
func OpenRequests(dir string) ([]Request, error) {
	docs, err := List(dir, ReextractRequest)
	if err != nil {
		return nil, err
	}
	var out []Request
	for _, d := range docs {
		if ack, _ := ReadAck(dir, ReextractRequest, d.ID); ack != nil {
			continue
		}
		var p struct {
			Day string `json:"day"`
		}
		if err := json.Unmarshal(d.Payload, &p); err != nil {
			return nil, fmt.Errorf("request %s: %w", d.ID, err)
		}
		day, err := time.Parse(time.DateOnly, p.Day)
		if err != nil {
			return nil, fmt.Errorf("request %s: %w", d.ID, err)
		}
		out = append(out, Request{ID: d.ID, Day: day})
	}
	return out, nil
}

// WriteAck answers a handoff (what a supplier, or a simulator, does).
func WriteAck(dir, kind, id string, a Ack) error {
	if strings.ContainsAny(id, `/\`) || strings.Contains(id, "..") {
		return fmt.Errorf("handoff id %q is not a plain name", id)
	}
	a.Version = Version
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, kind+"-"+id+".ack.json"), append(b, '\n'))
}
