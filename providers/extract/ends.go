package extract

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sync"
	"time"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/landing"
	"github.com/im1dev/im1/state"
)

// endings works out when extraction must stop for this extract: the
// dataset's IG approval, or the permission of every organisation the
// source delivers (a multi-organisation extract cannot drop one practice's
// rows, so one practice's end is reported, not enforced by withdrawal).
func endings(ctx context.Context, req *Request, zone *time.Location, facts *stateFacts) (Ending, error) {
	var end Ending
	consider := func(day, reason string) {
		t, err := time.ParseInLocation(time.DateOnly, day, zone)
		if err != nil {
			return
		}
		if end.Day.IsZero() || t.Before(end.Day) {
			end = Ending{Day: t, Reason: reason}
		}
	}
	if d := providers.String(req.Dataset, "approval_expires"); d != "" {
		consider(d, fmt.Sprintf("IG approval %s ended %s", providers.String(req.Dataset, "ig_approval"), d))
	}
	orgs := providers.Strings(req.Source, "organisations")
	if len(orgs) == 0 {
		orgs = providers.Strings(providers.GetAttr(req.Source, "organisation_group"), "organisations")
	}
	if len(orgs) == 0 || req.Env.Store == nil {
		return end, nil
	}
	until := facts.until
	latest, all := "", true
	for _, ods := range orgs {
		u := until[ods]
		if u == "" {
			all = false
			break
		}
		if u > latest {
			latest = u
		}
	}
	if all && latest != "" {
		consider(latest, fmt.Sprintf("the practices' permission (%v) ended %s", orgs, latest))
	}
	return end, nil
}

// stateFacts is what every extract of a run needs from the resources in
// state: the organisations' permission ends and each resource's status.
// It is read once per state generation, not once per extract (7,000
// organisation-specific sites would otherwise scan state 7,000 times).
type stateFacts struct {
	store  state.Store
	gen    uint64
	until  map[string]string // ODS -> permission_until
	status map[string]string // address -> status

	bulkOnce sync.Once
	digests  state.Digests
	handoffs map[string][]state.Handoff
	bulkErr  error
}

// bulk reads every extract's delivery digest and every handoff once per
// state generation: two queries, instead of two per extract.
func (f *stateFacts) bulk(st state.Store) (state.Digests, map[string][]state.Handoff, error) {
	f.bulkOnce.Do(func() {
		ctx := context.Background()
		if f.digests, f.bulkErr = st.DeliveryDigests(ctx); f.bulkErr != nil {
			return
		}
		hs, err := st.Handoffs(ctx, "")
		if err != nil {
			f.bulkErr = err
			return
		}
		f.handoffs = map[string][]state.Handoff{}
		for _, h := range hs {
			f.handoffs[h.Source] = append(f.handoffs[h.Source], h)
		}
	})
	return f.digests, f.handoffs, f.bulkErr
}

func readFacts(ctx context.Context, st state.Store) (*stateFacts, error) {
	rs, err := st.ResourceHeads(ctx, "organisation")
	if err != nil {
		return nil, err
	}
	f := &stateFacts{until: map[string]string{}, status: map[string]string{}}
	for _, r := range rs {
		f.status[r.Addr] = r.Status
		if r.Type != "organisation" {
			continue
		}
		var a struct {
			ODS   string `json:"ods"`
			Until string `json:"permission_until"`
		}
		if json.Unmarshal(r.Attrs, &a) == nil && a.ODS != "" {
			f.until[a.ODS] = a.Until
		}
	}
	return f, nil
}

// Withdrawn reports whether a period lies after the extract's end.
func (r *Request) Withdrawn(period time.Time) bool {
	return !r.Ends.Day.IsZero() && period.After(r.Ends.Day)
}

// Expired reports whether a period is past the schedule's retention.
func (r *Request) Expired(period time.Time) bool {
	ret := r.Schedule.Retention
	if ret <= 0 {
		return false
	}
	end := period.Add(ret)
	if ret%(24*time.Hour) == 0 {
		// Whole days are calendar days, so a clock change never shifts one.
		end = period.AddDate(0, 0, int(ret/(24*time.Hour)))
	}
	return end.Before(r.Schedule.Day(r.Env.Now()))
}

// RemoveLanded deletes what a delivery landed (the batch directory and its
// archived copy), marks it withdrawn or expired, and records the removal
// in the audit log: this is patient data leaving im1's hands.
func RemoveLanded(ctx context.Context, env *providers.Env, d *state.Delivery, archiveRel, status, why string) error {
	land, err := landing.OpenDir(env.Dirs.Landing, env.FileMode, env.DirMode)
	if err != nil {
		return err
	}
	defer land.Close()
	if err := land.RemoveAll(d.Path); err != nil {
		return fmt.Errorf("removing %s: %w", d.Path, err)
	}
	if archiveRel != "" {
		arch, err := landing.OpenDir(env.Dirs.Archive, env.FileMode, env.DirMode)
		if err != nil {
			return err
		}
		defer arch.Close()
		if err := arch.RemoveAll(archiveRel); err != nil {
			return fmt.Errorf("removing archive %s: %w", archiveRel, err)
		}
	}
	detail, _ := json.Marshal(map[string]string{"extract": d.Extract, "batch": d.BatchID, "day": d.Day,
		"landed": path.Join(env.Dirs.Landing, d.Path), "archive": archiveRel, "reason": why})
	op := "purge-withdrawn"
	if status == state.DeliveryExpired {
		op = "retention"
	}
	d.Status, d.Reason = status, why
	return env.Store.Tx(ctx, func(tx state.Tx) error {
		if err := tx.PutDelivery(d); err != nil {
			return err
		}
		_, err := tx.AppendAudit(state.AuditEntry{Time: env.Now().UTC(), Who: "im1", Operation: op, Outcome: "ok", Detail: string(detail)})
		return err
	})
}
