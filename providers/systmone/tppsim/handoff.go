package tppsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/im1dev/im1/providers/handoff"
	"github.com/im1dev/im1/providers/landing"
	"github.com/im1dev/im1/providers/systmone/srfile"
)

// Supplier is the handoff directory's folder for SystmOne.
const Supplier = "systmone"

// ErrNoConfig is returned when the handoff directory holds no report sheet.
var ErrNoConfig = errors.New("tppsim: no report_config handoff")

// Handoff is the newest report sheet for a report.
type Handoff struct {
	ID      string
	Created time.Time
	Config  srfile.ReportConfig
}

// ReadHandoff reads the newest handoff/systmone/<report>/report_config-<id>.json.
func ReadHandoff(handoffDir, report string) (*Handoff, error) {
	if err := landing.ValidName(report); err != nil {
		return nil, fmt.Errorf("tppsim: report: %w", err)
	}
	docs, err := handoff.List(handoff.Dir(handoffDir, Supplier, report), handoff.ReportConfig)
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%w for %s in %s", ErrNoConfig, report, handoffDir)
	}
	d := docs[len(docs)-1]
	h := &Handoff{ID: d.ID, Created: d.Created}
	if err := json.Unmarshal(d.Payload, &h.Config); err != nil {
		return nil, fmt.Errorf("tppsim: report_config-%s: %w", d.ID, err)
	}
	return h, nil
}

// ReadHandoffConfig returns the newest report sheet for a report.
func ReadHandoffConfig(handoffDir, report string) (*srfile.ReportConfig, error) {
	h, err := ReadHandoff(handoffDir, report)
	if err != nil {
		return nil, err
	}
	return &h.Config, nil
}

// WriteAck answers a report sheet: report_config-<id>.ack.json beside it,
// with status "accepted", "done" or "rejected".
func WriteAck(handoffDir, report, id, status string) error {
	return writeAck(handoffDir, report, id, status, time.Now())
}

func writeAck(handoffDir, report, id, status string, now time.Time) error {
	if err := landing.ValidName(report); err != nil {
		return fmt.Errorf("tppsim: report: %w", err)
	}
	name := handoff.ReportConfig + "-" + id + ".ack.json"
	if err := landing.ValidName(name); err != nil {
		return fmt.Errorf("tppsim: ack id: %w", err)
	}
	b, err := json.MarshalIndent(handoff.Ack{Version: handoff.Version, Status: status, Time: now.UTC()}, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(handoff.Dir(handoffDir, Supplier, report), name), append(b, '\n'))
}

// writeAtomic writes a small file whole or not at all.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op once renamed
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
