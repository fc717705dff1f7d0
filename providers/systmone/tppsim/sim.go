package tppsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/im1dev/im1/providers/landing"
	"github.com/im1dev/im1/providers/systmone/srfile"
)

// Sim is a SystmOne client running one strategic report into a gateway
// root: Step writes the next extract.
type Sim struct {
	Root, HandoffDir, Report string
	Seed                     int64
	Now                      func() time.Time // stamps acks; time.Now when nil
	Patients                 int              // per organisation; 25 when zero
	Version                  string           // TPP format version; "93" when empty
	OrgNames                 map[string]string
}

// simState is what a restarted simulator needs to carry on.
type simState struct {
	ConfigID string    `json:"config_id"` // the report sheet the last extract followed
	LastTo   time.Time `json:"last_to"`   // DateExtractTo of the last completed extract
	Extracts int       `json:"extracts"`
}

// StateDir is where Sim keeps its position, under Root. Its name is not
// an extract folder name, so readers of the root skip it.
const StateDir = ".tppsim"

func (s *Sim) statePath() string { return filepath.Join(s.Root, StateDir, s.Report+".json") }

func (s *Sim) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// extractTime is when the client runs on day: 02:15 plus up to half an
// hour, varying by day as TPP's cut-off does (SD-319).
func (s *Sim) extractTime(day time.Time) time.Time {
	d := time.Date(day.Year(), day.Month(), day.Day(), 2, 15, 0, 0, time.UTC)
	return d.Add(time.Duration(mix(uint64(s.Seed)^uint64(d.Unix()))%30) * time.Minute)
}

// Step writes the extract for day: full on the first call, and again when
// the report sheet has changed (a new sheet is a new report); otherwise a
// delta from the previous extract's DateExtractTo. A new sheet is
// acknowledged as "accepted". An extract left in progress does not move
// the chain on, so the next one covers its period again.
func (s *Sim) Step(day time.Time, faults Faults) (string, error) {
	if err := landing.ValidName(s.Report); err != nil {
		return "", fmt.Errorf("tppsim: report: %w", err)
	}
	h, err := ReadHandoff(s.HandoffDir, s.Report)
	if err != nil {
		return "", err
	}
	var st simState
	b, err := os.ReadFile(s.statePath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return "", err
	default:
		if err := json.Unmarshal(b, &st); err != nil {
			return "", fmt.Errorf("tppsim: state %s: %w", s.statePath(), err)
		}
	}
	full := st.ConfigID != h.ID || st.LastTo.IsZero()
	if st.ConfigID != h.ID {
		if err := writeAck(s.HandoffDir, s.Report, h.ID, "accepted", s.now()); err != nil {
			return "", err
		}
	}
	at := s.extractTime(day)
	if !full && !at.After(st.LastTo) {
		return "", fmt.Errorf("tppsim: extract time %s is not after the last extract's %s", at.Format(srfile.DateLayout), st.LastTo.Format(srfile.DateLayout))
	}
	spec := ExtractSpec{
		Root: s.Root, Config: h.Config, Time: at, To: at, From: st.LastTo, Full: full,
		Patients: s.Patients, Seed: s.Seed, Version: s.Version, OrgNames: s.OrgNames, Faults: faults,
	}
	folder, err := WriteExtract(spec)
	if err != nil {
		return "", err
	}
	if faults.LeaveInProgress {
		return folder, nil
	}
	st = simState{ConfigID: h.ID, LastTo: at, Extracts: st.Extracts + 1}
	b, err = json.MarshalIndent(st, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(s.statePath()), 0o755); err != nil {
		return "", err
	}
	return folder, writeAtomic(s.statePath(), append(b, '\n'))
}
