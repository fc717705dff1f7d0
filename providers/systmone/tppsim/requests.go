package tppsim

import (
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
	reqs, err := handoff.OpenRequests(dir)
	if err != nil {
		return nil, err
	}
	var days []string
	for _, rq := range reqs {
		day := rq.Day
		at := s.extractTime(day)
		spec := ExtractSpec{Root: s.Root, Config: h.Config, Time: at, To: at, From: s.extractTime(day.AddDate(0, 0, -1)),
			Patients: s.Patients, Seed: s.Seed + day.Unix(), Version: s.Version, OrgNames: s.OrgNames}
		if _, err := WriteExtract(spec); err != nil {
			return nil, err
		}
		if err := handoff.WriteAck(dir, handoff.ReextractRequest, rq.ID, handoff.Ack{Status: "done", Note: "report re-run", Time: s.now().UTC()}); err != nil {
			return nil, err
		}
		days = append(days, day.Format(time.DateOnly))
	}
	return days, nil
}
