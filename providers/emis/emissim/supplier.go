package emissim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/im1dev/im1/providers/handoff"
	"github.com/im1dev/im1/providers/pgpkey"
)

// Supplier plays EMIS's side of the contract: it reads the public key im1
// handed off for a site, delivers batches encrypted to the newest one into
// the site's directory with processing ids that follow on, and answers
// re-extract requests as a service desk would. Its own bookkeeping lives in
// StateFile, outside the served directory, so a restarted simulator goes on
// where it stopped.
type Supplier struct {
	Dir        string // the directory the SFTP server serves
	HandoffDir string // im1's handoff root
	SiteDir    string // the site's folder name under handoff/emis ("central")
	StateFile  string
	Agreement  string
	Orgs       []Org
	Tables     []string
	Patients   int
	Seed       int64
	Armor      bool
	Compress   bool
	Signer     *openpgp.Entity
	// WrongKey is the recipient used for the wrong-key fault.
	WrongKey openpgp.EntityList
}

// supplierState is what the simulator remembers between runs.
type supplierState struct {
	NextProc  int64         `json:"next_proc"`
	Batches   int           `json:"batches"`
	Skipped   []skippedDays `json:"skipped,omitempty"`
	Answered  []string      `json:"answered,omitempty"`
	KeyUsedAt string        `json:"key,omitempty"`
}

type skippedDays struct {
	Day  string `json:"day"`
	Proc int64  `json:"proc"`
}

func (s *Supplier) load() (*supplierState, error) {
	st := &supplierState{NextProc: 1}
	b, err := os.ReadFile(s.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	return st, json.Unmarshal(b, st)
}

func (s *Supplier) save(st *supplierState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.StateFile), 0o750); err != nil {
		return err
	}
	tmp := s.StateFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, s.StateFile)
}

// RecipientKey returns the newest public key im1 handed off for the site.
func (s *Supplier) RecipientKey() (openpgp.EntityList, string, error) {
	docs, err := handoff.List(handoff.Dir(s.HandoffDir, "emis", s.SiteDir), handoff.PublicKey)
	if err != nil {
		return nil, "", err
	}
	if len(docs) == 0 {
		return nil, "", fmt.Errorf("no public key handed off for site %s yet: run im1 apply first", s.SiteDir)
	}
	var p struct {
		Armored     string `json:"armored"`
		Fingerprint string `json:"fingerprint"`
	}
	newest := docs[len(docs)-1]
	if err := json.Unmarshal(newest.Payload, &p); err != nil {
		return nil, "", err
	}
	e, err := pgpkey.ParsePublic(p.Armored)
	if err != nil {
		return nil, "", err
	}
	return openpgp.EntityList{e}, p.Fingerprint, nil
}

// Deliver writes the next batch, extracted at t: the first is the full
// extract, later ones deltas whose processing id follows on.
func (s *Supplier) Deliver(t time.Time, faults Faults) ([]string, error) {
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	names, err := s.write(st, t, st.NextProc, faults)
	if err != nil {
		return nil, err
	}
	st.NextProc++
	st.Batches++
	return names, s.save(st)
}

// AnswerWithFull answers every open re-extract request with one full
// extract at t (a re-bulk) instead of the missing deltas, and says so in
// the acknowledgement, since EMIS files carry no full/delta flag.
func (s *Supplier) AnswerWithFull(t time.Time) (string, error) {
	dir := handoff.Dir(s.HandoffDir, "emis", s.SiteDir)
	reqs, err := handoff.OpenRequests(dir)
	if err != nil || len(reqs) == 0 {
		return "", err
	}
	st, err := s.load()
	if err != nil {
		return "", err
	}
	st.Batches = 0 // the generator writes no delete rows in a full extract
	if _, err := s.write(st, t, st.NextProc, Faults{}); err != nil {
		return "", err
	}
	batch := t.UTC().Format("2006-01-02T15.04.05")
	for _, rq := range reqs {
		if err := handoff.WriteAck(dir, handoff.ReextractRequest, rq.ID, handoff.Ack{Status: "done", Note: "answered with a full re-extract", Time: t.UTC(), FullBatch: batch}); err != nil {
			return "", err
		}
	}
	st.NextProc++
	st.Batches = 1
	st.Skipped = nil
	return batch, s.save(st)
}

// DeliverAs writes a batch with a chosen processing id, for out-of-order
// and duplicate deliveries; it does not move the chain on.
func (s *Supplier) DeliverAs(t time.Time, proc int64, faults Faults) ([]string, error) {
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	return s.write(st, t, proc, faults)
}

// Miss consumes a processing id without delivering: the day EMIS missed.
func (s *Supplier) Miss(day time.Time) error {
	st, err := s.load()
	if err != nil {
		return err
	}
	st.Skipped = append(st.Skipped, skippedDays{Day: day.Format(time.DateOnly), Proc: st.NextProc})
	st.NextProc++
	st.Batches++
	return s.save(st)
}

// AnswerRequests delivers the missed batch for every re-extract request im1
// handed off, and acknowledges it. It returns the days answered.
func (s *Supplier) AnswerRequests(at time.Time) ([]string, error) {
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	dir := handoff.Dir(s.HandoffDir, "emis", s.SiteDir)
	reqs, err := handoff.OpenRequests(dir)
	if err != nil {
		return nil, err
	}
	var days []string
	for _, rq := range reqs {
		day, p := rq.Day, struct{ Day string }{rq.Day.Format(time.DateOnly)}
		proc := int64(-1)
		for i, sk := range st.Skipped {
			if sk.Day == p.Day {
				proc = sk.Proc
				st.Skipped = append(st.Skipped[:i], st.Skipped[i+1:]...)
				break
			}
		}
		note := "re-extracted"
		if proc < 0 {
			note = "nothing was missed for that day on our side"
		} else {
			ts := time.Date(day.Year(), day.Month(), day.Day(), 2, 15, 0, 0, time.UTC)
			if _, err := s.write(st, ts, proc, Faults{}); err != nil {
				return nil, err
			}
		}
		if err := handoff.WriteAck(dir, handoff.ReextractRequest, rq.ID, handoff.Ack{Status: "done", Note: note, Time: at.UTC()}); err != nil {
			return nil, err
		}
		days = append(days, p.Day)
	}
	return days, s.save(st)
}

func (s *Supplier) write(st *supplierState, t time.Time, proc int64, faults Faults) ([]string, error) {
	to, _, err := s.RecipientKey()
	if err != nil {
		return nil, err
	}
	patients := s.Patients
	if patients == 0 {
		patients = 20
	}
	return WriteBatch(BatchSpec{
		Dir: s.Dir, Agreement: s.Agreement, Time: t, ProcStart: proc, ProcEnd: proc,
		Orgs: s.Orgs, Tables: s.Tables, Patients: patients, Seed: s.Seed + proc,
		Recipients: to, WrongKeyRecipient: s.WrongKey, Signer: s.Signer, Armor: s.Armor, Compress: s.Compress,
		Full: st.Batches == 0, Faults: faults,
	})
}
