package tppsim

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/im1dev/im1/providers/handoff"
)

// AnswerRequests plays the reporting unit's service desk: for every
// re-extract request im1 handed off and nobody answered yet, it re-runs the
// report for that day (a delta from the day before, overlapping whatever
// came since, as a re-run does) and acknowledges the request. It returns
// the days answered.
func (s *Sim) AnswerRequests() ([]string, error) {
	h, err := ReadHandoff(s.HandoffDir, s.Report)
	if err != nil {
		return nil, err
	}
	dir := handoff.Dir(s.HandoffDir, Supplier, s.Report)
	docs, err := handoff.List(dir, handoff.ReextractRequest)
	if err != nil {
		return nil, err
	}
	var days []string
	for _, d := range docs {
		if ack, _ := handoff.ReadAck(dir, handoff.ReextractRequest, d.ID); ack != nil {
			continue
		}
		var p struct {
			Day string `json:"day"`
		}
		if err := json.Unmarshal(d.Payload, &p); err != nil {
			return nil, err
		}
		day, err := time.Parse(time.DateOnly, p.Day)
		if err != nil {
			return nil, fmt.Errorf("tppsim: request %s: %w", d.ID, err)
		}
		at := s.extractTime(day)
		spec := ExtractSpec{Root: s.Root, Config: h.Config, Time: at, To: at, From: s.extractTime(day.AddDate(0, 0, -1)),
			Patients: s.Patients, Seed: s.Seed + int64(day.Unix()), Version: s.Version, OrgNames: s.OrgNames}
		if _, err := WriteExtract(spec); err != nil {
			return nil, err
		}
		b, _ := json.MarshalIndent(handoff.Ack{Version: handoff.Version, Status: "done", Note: "report re-run", Time: s.now().UTC()}, "", "  ")
		if err := writeAtomic(filepath.Join(dir, handoff.ReextractRequest+"-"+d.ID+".ack.json"), append(b, '\n')); err != nil {
			return nil, err
		}
		days = append(days, p.Day)
	}
	return days, nil
}
