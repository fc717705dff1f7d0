package emisfile

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Batch is the set of files sharing one extract timestamp (SR: batch =
// timestamp; every file with that timestamp joins it).
type Batch struct {
	ID                 string    // yyyy-MM-ddTHH.mm.ss
	Time               time.Time // the extract timestamp
	ProcStart, ProcEnd int64     // from the batch's first file in file-type order
	Agreement          string    // likewise
	Files              map[string]Name
	Duplicates         []Name // a second file of a type already in Files
}

// GroupBatches groups names by extract timestamp, oldest batch first. Within
// a batch the first name in (file type, processing ids, name) order wins a
// file type; later ones go to Duplicates. The result does not depend on the
// order of names.
func GroupBatches(names []Name) []*Batch {
	sorted := append([]Name(nil), names...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		if a.FileType() != b.FileType() {
			return a.FileType() < b.FileType()
		}
		if a.ProcStart != b.ProcStart {
			return a.ProcStart < b.ProcStart
		}
		if a.ProcEnd != b.ProcEnd {
			return a.ProcEnd < b.ProcEnd
		}
		if as, bs := a.String(), b.String(); as != bs {
			return as < bs
		}
		return a.Raw < b.Raw
	})
	var out []*Batch
	for _, n := range sorted {
		var b *Batch
		if len(out) > 0 && out[len(out)-1].Time.Equal(n.Time) {
			b = out[len(out)-1]
		} else {
			b = &Batch{ID: n.BatchID(), Time: n.Time, ProcStart: n.ProcStart, ProcEnd: n.ProcEnd,
				Agreement: n.Agreement, Files: map[string]Name{}}
			out = append(out, b)
		}
		if _, dup := b.Files[n.FileType()]; dup {
			b.Duplicates = append(b.Duplicates, n)
			continue
		}
		b.Files[n.FileType()] = n
	}
	return out
}

// Names returns the batch's files (duplicates excluded) in file-type order.
func (b *Batch) Names() []Name {
	types := make([]string, 0, len(b.Files))
	for t := range b.Files {
		types = append(types, t)
	}
	sort.Strings(types)
	out := make([]Name, len(types))
	for i, t := range types {
		out[i] = b.Files[t]
	}
	return out
}

// Check reports why the batch is not complete and consistent, or nil. It needs
// every required file type plus the two organisation files, one file per type,
// one processing-id range across the files, and, when agreement is not empty,
// the expected sharing agreement on every file. File types that are delivered
// but not required are allowed: a dataset may take a subset of a site's
// tables. All problems are returned, joined, in a stable order.
func (b *Batch) Check(required []string, agreement string) error {
	var errs []error
	need := map[string]bool{SharingOrganisation: true, AdminOrganisation: true}
	for _, r := range required {
		need[r] = true
	}
	missing := make([]string, 0, len(need))
	for t := range need {
		if _, ok := b.Files[t]; !ok {
			missing = append(missing, t)
		}
	}
	sort.Strings(missing)
	for _, t := range missing {
		errs = append(errs, fmt.Errorf("Could not find file of type %s in batch.  Batch identifier = %s", t, b.ID))
	}
	if len(b.Duplicates) > 0 {
		dups := make([]string, len(b.Duplicates))
		for i, d := range b.Duplicates {
			dups[i] = d.Raw
		}
		errs = append(errs, fmt.Errorf("Incorrect number of files in batch. Batch identifier = %s: more than one file of a type: %s",
			b.ID, strings.Join(dups, ", ")))
	}
	all := append(b.Names(), b.Duplicates...)
	wrongAgreement := map[string]bool{}
	for _, n := range all {
		if n.ProcStart != b.ProcStart {
			errs = append(errs, fmt.Errorf("Emis start processing id does not match the rest in the batch.  Filename = %s", n.Raw))
		}
		if n.ProcEnd != b.ProcEnd {
			errs = append(errs, fmt.Errorf("Emis end processing id does not match the rest in the batch.  Filename = %s", n.Raw))
		}
		if !n.Time.Equal(b.Time) {
			errs = append(errs, fmt.Errorf("Emis extract date does not match the rest in the batch.  Filename = %s", n.Raw))
		}
		if agreement != "" && !strings.EqualFold(n.Agreement, agreement) && !wrongAgreement[n.Agreement] {
			wrongAgreement[n.Agreement] = true
			errs = append(errs, fmt.Errorf("Sharing agreement %s does not match expected %s", n.Agreement, strings.ToUpper(agreement)))
		}
	}
	return errors.Join(errs...)
}
