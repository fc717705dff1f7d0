package tppsim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/im1dev/im1/providers/handoff"
	"github.com/im1dev/im1/providers/systmone/srfile"
)

var ackTime = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

func writeConfig(t *testing.T, dir, id string, created time.Time, c srfile.ReportConfig) {
	t.Helper()
	if _, err := handoff.Write(handoff.Dir(dir, Supplier, "core"), handoff.ReportConfig, id, "systmone_strategic_report.core", created, c, ".md", []byte(c.Markdown())); err != nil {
		t.Fatal(err)
	}
}

func TestReadHandoffConfigNewest(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadHandoffConfig(dir, "core"); err == nil || !strings.Contains(err.Error(), "no report_config") {
		t.Fatalf("empty dir: %v", err)
	}
	old, cur := testConfig(",", `"`), testConfig("|", "")
	writeConfig(t, dir, "b", ackTime, old)
	writeConfig(t, dir, "a", ackTime.Add(time.Hour), cur)
	if err := WriteAck(dir, "core", "b", "accepted"); err != nil { // an ack must not be read as a sheet
		t.Fatal(err)
	}
	got, err := ReadHandoffConfig(dir, "core")
	if err != nil {
		t.Fatal(err)
	}
	if got.Delimiter != "|" {
		t.Fatalf("read the older sheet: %+v", got)
	}
	a, err := handoff.ReadAck(handoff.Dir(dir, Supplier, "core"), handoff.ReportConfig, "b")
	if err != nil || a == nil || a.Status != "accepted" {
		t.Fatalf("ack %+v %v", a, err)
	}
	if _, err := ReadHandoffConfig(dir, "../core"); err == nil {
		t.Fatal("accepted a path as a report name")
	}
	if err := WriteAck(dir, "core", "../x", "done"); err == nil {
		t.Fatal("accepted a path as an id")
	}
}

func TestSimChainsExtracts(t *testing.T) {
	root, hd := t.TempDir(), t.TempDir()
	writeConfig(t, hd, "1", ackTime, testConfig(",", `"`))
	newSim := func() *Sim {
		return &Sim{Root: root, HandoffDir: hd, Report: "core", Seed: 5, Patients: 10, Now: func() time.Time { return ackTime }}
	}
	day := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	read := func(folder string) *srfile.Manifest {
		f, err := os.Open(filepath.Join(folder, srfile.ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		m, err := srfile.ParseManifest(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	var prevTo time.Time
	steps := []struct {
		faults   Faults
		restart  bool
		newSheet bool
		full     bool
		overlap  bool
		gapErr   bool
	}{
		{full: true},
		{},
		{restart: true},
		{faults: Faults{LeaveInProgress: true}},
		{}, // covers the abandoned extract's period again
		{faults: Faults{Overlap: true}, overlap: true},
		{faults: Faults{GapMinutes: 30}, gapErr: true},
		{newSheet: true, full: true},
	}
	s := newSim()
	for i, st := range steps {
		if st.restart {
			s = newSim()
		}
		if st.newSheet {
			writeConfig(t, hd, "2", ackTime.Add(time.Hour), testConfig("|", ""))
		}
		folder, err := s.Step(day.AddDate(0, 0, i), st.faults)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if st.faults.LeaveInProgress {
			if _, ok := srfile.ParseFolder(filepath.Base(folder)); ok {
				t.Fatalf("step %d: in-progress folder %s", i, folder)
			}
			continue
		}
		m := read(folder)
		if m.IsFull() != st.full {
			t.Fatalf("step %d: full = %v", i, m.IsFull())
		}
		if cut, _ := srfile.ParseFolder(filepath.Base(folder)); !m.Cutoff().Equal(cut) {
			t.Fatalf("step %d: cutoff %v, folder %s", i, m.Cutoff(), folder)
		}
		if !st.full {
			overlap, err := srfile.CheckContinuity(prevTo, m.From())
			if (err != nil) != st.gapErr || overlap != st.overlap {
				t.Fatalf("step %d: overlap %v err %v", i, overlap, err)
			}
		}
		prevTo = m.Cutoff()
	}
	for _, id := range []string{"1", "2"} {
		a, err := handoff.ReadAck(handoff.Dir(hd, Supplier, "core"), handoff.ReportConfig, id)
		if err != nil || a == nil || a.Status != "accepted" || !a.Time.Equal(ackTime) {
			t.Fatalf("ack %s: %+v %v", id, a, err)
		}
	}
	// A second extract on the same day cannot be after the last one.
	if _, err := s.Step(day.AddDate(0, 0, len(steps)-1), Faults{}); err == nil {
		t.Fatal("a second extract on one day was written")
	}
}
