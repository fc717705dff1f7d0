package extract

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/im1dev/im1/internal/failpoint"
	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/handoff"
	"github.com/im1dev/im1/providers/landing"
	"github.com/im1dev/im1/state"
)

// Batch is one delivered batch as a supplier provider sees it: enough for
// the shared logic to say what its expected delivery needs.
type Batch struct {
	ID       string
	Time     time.Time
	Delivery *state.Delivery // already landed (late files, repair)
	Late     int             // files to add to a landed batch
	Repair   []state.File    // landed files missing or changed
	Problem  string          // not fetchable yet (incomplete, in progress)
	Blocked  string          // loading it would break the delta chain
	// Superseded names the later full extract that makes this delta moot.
	Superseded string
	// Resume is this batch's delivery left pending by a crashed run.
	Resume *state.Delivery
	Kind   string // full or delta
	// Detail is the supplier's own view of the batch.
	Detail any
}

// Period is one expected delivery: a schedule period and what arrived.
type Period struct {
	Key         time.Time
	Batches     []*Batch
	Landed      []*state.Delivery
	Quarantined []*state.Delivery
}

// Picture is everything known about one extract's expected deliveries,
// built from state and what the supplier's side shows.
type Picture struct {
	Sched     Schedule
	Periods   map[string]*Period
	Requested map[string]*state.Handoff // awaiting re-extract requests by key
	Diags     hcl.Diagnostics
	// Full is the latest full extract landed: periods before it that
	// never got a delivery are covered by it, not missing.
	Full *state.Delivery
	// Pending are deliveries a crashed run recorded but did not finish:
	// the supplier's batch is landed again and replaces them.
	Pending []*state.Delivery
	// plain counts landed deltas by period when the picture was loaded
	// from a digest: the bulk of a history, without a Period each.
	plain []plainPeriod
}

// plainPool recycles the per-period counts between pictures: a plan at
// national scale builds one picture per extract, each with a year of
// periods (82 MB of them for 7,000 extracts, and the GC scanned them all).
var plainPool = sync.Pool{New: func() any { return new([]plainPeriod) }}

// Release gives the picture's per-period counts back for the next one.
// The picture must not be used afterwards; the Instances made from it
// hold none of its memory.
func (p *Picture) Release() {
	if p.plain != nil {
		b := p.plain[:0]
		p.plain = nil
		plainPool.Put(&b)
	}
}

// plainPeriod is a period holding only landed deltas.
type plainPeriod struct {
	key time.Time
	n   int
}

// NewPicture starts an empty picture.
func NewPicture(s Schedule) *Picture {
	return &Picture{Sched: s, Periods: map[string]*Period{}, Requested: map[string]*state.Handoff{}}
}

// Period returns the period holding t, creating it.
func (p *Picture) Period(t time.Time) *Period {
	k := p.Sched.PeriodOf(t)
	ks := Key(k)
	pp := p.Periods[ks]
	if pp == nil {
		pp = &Period{Key: k}
		p.Periods[ks] = pp
	}
	return pp
}

// Load reads the extract's deliveries from state into their periods (by
// their cut-off) and the re-extract requests still awaiting the supplier.
// It returns the deliveries by batch id.
//
// A plan without refresh (nothing listed, no files looked at) reads the
// extract's digest instead of its rows when there is a current one and
// nothing is pending; the map returned is then empty, as nothing listed
// can match it.
func (p *Picture) Load(ctx context.Context, req *Request, source string) (map[string]*state.Delivery, error) {
	env, extractAddr := req.Env, req.Addr
	byBatch := map[string]*state.Delivery{}
	if env.Store == nil {
		return byBatch, nil
	}
	loaded := false
	if env.NoRefresh && !req.Applying && req.digests != nil {
		d, err := req.digests.Get(extractAddr)
		if err != nil {
			return nil, err
		}
		if d != nil && d.Pending == 0 {
			p.loadDigest(d, source)
			loaded = true
		}
	}
	if !loaded {
		ds, err := env.Store.Deliveries(ctx, extractAddr)
		if err != nil {
			return nil, err
		}
		for i := range ds {
			d := &ds[i]
			if d.Source != source {
				continue
			}
			byBatch[d.BatchID] = d
			p.add(d)
		}
	}
	hs, ok := req.handoffs[extractAddr]
	if !ok && req.handoffs == nil {
		var err error
		if hs, err = env.Store.Handoffs(ctx, extractAddr); err != nil {
			return nil, err
		}
	}
	for i := range hs {
		if hs[i].Kind == handoff.ReextractRequest && hs[i].Status == state.HandoffAwaiting {
			p.Requested[strings.TrimPrefix(hs[i].ID, DirName(extractAddr)+"-")] = &hs[i]
		}
	}
	return byBatch, nil
}

// add places one delivery read from state.
func (p *Picture) add(d *state.Delivery) {
	switch d.Status {
	case state.DeliveryLanded:
		pp := p.Period(d.Cutoff)
		pp.Landed = append(pp.Landed, d)
		if d.Kind == "full" && (p.Full == nil || d.Cutoff.After(p.Full.Cutoff)) {
			p.Full = d
		}
	case state.DeliveryQuarantined:
		pp := p.Period(d.Cutoff)
		pp.Quarantined = append(pp.Quarantined, d)
	case state.DeliveryPending:
		p.Pending = append(p.Pending, d)
	}
}

// loadDigest places a digest's deliveries: landed deltas are counted per
// period, the rest become deliveries as Load would read them (only the
// fields planning uses).
func (p *Picture) loadDigest(dg *state.DeliveryDigest, source string) {
	var lo, hi int64 // the current period's bounds, unix ns: most cut-offs fall in the last one
	for gi := range dg.Groups {
		g := &dg.Groups[gi]
		if g.Source != source {
			continue
		}
		if g.Detailed() {
			for i, c := range g.Cutoffs {
				p.add(&state.Delivery{Extract: dg.Extract, Source: g.Source, Status: g.Status, Kind: g.Kind,
					Cutoff: time.Unix(0, c).UTC(), BatchID: g.Batches[i], Reason: g.Reasons[i]})
			}
			continue
		}
		if p.plain == nil {
			p.plain = (*plainPool.Get().(*[]plainPeriod))[:0]
		}
		p.plain = slices.Grow(p.plain, len(g.Cutoffs))
		var k, next time.Time
		for _, c := range g.Cutoffs {
			if n := len(p.plain); n > 0 && c >= lo && c < hi {
				p.plain[n-1].n++
				continue
			}
			// A history is mostly one period after another: try the next
			// period before working one out from the cut-off.
			if len(p.plain) > 0 && c >= hi {
				if after := p.Sched.Next(next); c < after.UnixNano() {
					k, next = next, after
					lo, hi = k.UnixNano(), next.UnixNano()
					p.plain = append(p.plain, plainPeriod{key: k, n: 1})
					continue
				}
			}
			k = p.Sched.PeriodOf(time.Unix(0, c))
			next = p.Sched.Next(k)
			lo, hi = k.UnixNano(), next.UnixNano()
			p.plain = append(p.plain, plainPeriod{key: k, n: 1})
		}
	}
	// Cut-offs come in day order, so this is usually sorted already; equal
	// keys (out-of-order deliveries) are merged.
	slices.SortStableFunc(p.plain, func(a, b plainPeriod) int { return a.key.Compare(b.key) })
	out := p.plain[:0]
	for _, pl := range p.plain {
		if n := len(out); n > 0 && out[n-1].key.Equal(pl.key) {
			out[n-1].n += pl.n
			continue
		}
		out = append(out, pl)
	}
	p.plain = out
}

// FindRepairs adds a repair batch for every landed delivery with a file
// missing or changed.
func (p *Picture) FindRepairs(ctx context.Context, env *providers.Env, applying bool) error {
	if env.NoRefresh && !applying {
		return nil // plan -refresh=false does not look at the landed files
	}
	dir, err := OpenLanding(env.Dirs.Landing)
	if err != nil {
		return err
	}
	if dir != nil {
		defer dir.Close()
	}
	for _, pp := range p.Periods {
		for _, d := range pp.Landed {
			broken, err := BrokenFiles(ctx, env.Store, dir, d)
			if err != nil {
				return err
			}
			if len(broken) > 0 {
				pp.Batches = append(pp.Batches, &Batch{ID: d.BatchID, Time: d.Cutoff, Delivery: d, Repair: broken, Kind: d.Kind})
			}
		}
	}
	return nil
}

// FinishPending plans the deliveries a crashed run left pending that no
// listed batch resumes (the supplier removed it since): their files are
// landed again from the archive, like a repair of every file.
func (p *Picture) FinishPending(ctx context.Context, env *providers.Env, resumed map[string]bool) error {
	for _, d := range p.Pending {
		if resumed[d.BatchID] {
			continue
		}
		files, err := env.Store.Files(ctx, d.ID)
		if err != nil {
			return err
		}
		var todo []state.File
		for _, f := range files {
			if f.Status == state.FileLanded {
				f.Reason = f.Table + " (finishing an interrupted landing)"
				todo = append(todo, f)
			}
		}
		if len(todo) > 0 {
			pp := p.Period(d.Cutoff)
			pp.Batches = append(pp.Batches, &Batch{ID: d.BatchID, Time: d.Cutoff, Delivery: d, Repair: todo, Kind: d.Kind})
		}
	}
	return nil
}

// Order lists the period keys in time order.
func (p *Picture) Order() []string {
	out := make([]string, 0, len(p.Periods))
	for k := range p.Periods {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Instances turns the picture into one change per expected delivery (every
// period from the schedule's start to now, and any other period holding
// deliveries or batches), in time order. Consecutive periods with the same
// outcome that apply has nothing to do for are one run.
func (p *Picture) Instances(req *Request, supplier string) []providers.InstanceChange {
	// The periods that hold something, in time order: the detailed ones
	// (few) merged with the plain ones (a year of them, already sorted)
	// as they are walked, not copied and sorted together.
	type held struct {
		key time.Time
		pp  *Period
		n   int // plain landed deltas
	}
	ps := make([]*Period, 0, len(p.Periods))
	for _, pp := range p.Periods {
		ps = append(ps, pp)
	}
	slices.SortFunc(ps, func(a, b *Period) int { return a.Key.Compare(b.Key) })
	pi, pj := 0, 0
	more := func() bool { return pi < len(ps) || pj < len(p.plain) }
	// peek is the earliest key not yet taken; take merges everything at it.
	peek := func() time.Time {
		switch {
		case pi == len(ps):
			return p.plain[pj].key
		case pj == len(p.plain) || ps[pi].Key.Before(p.plain[pj].key):
			return ps[pi].Key
		}
		return p.plain[pj].key
	}
	take := func() held {
		h := held{key: peek()}
		for ; pi < len(ps) && ps[pi].Key.Equal(h.key); pi++ {
			h.pp = ps[pi]
		}
		for ; pj < len(p.plain) && p.plain[pj].key.Equal(h.key); pj++ {
			h.n += p.plain[pj].n
		}
		return h
	}
	var out runs
	now := req.Env.Now()
	next, end := p.Sched.PeriodOf(p.Sched.Start), p.Sched.PeriodOf(now)
	expecting := !next.After(end)
	for more() || expecting {
		var h held
		switch {
		case more() && (!expecting || !peek().After(next)):
			h = take()
			if expecting && h.key.Equal(next) {
				next = p.Sched.Next(next)
			}
		default:
			h.key = next
			next = p.Sched.Next(next)
		}
		expecting = expecting && !next.After(end)
		if h.pp == nil && h.n > 0 && !req.Withdrawn(h.key) && !req.Expired(h.key) {
			out.add(providers.InstanceChange{Action: providers.Landed}, h.key) // the bulk of any history
			continue
		}
		pp := h.pp
		if pp == nil {
			pp = &Period{Key: h.key}
		}
		if ic, ok := p.instance(req, supplier, pp, len(pp.Landed)+h.n, now); ok {
			out.add(ic, h.key)
		}
	}
	return out.done()
}

// firstQuarantined is the earliest batch quarantined in a period (by cut-off,
// then batch id), whose reason the period reports, however it was read.
func firstQuarantined(ds []*state.Delivery) *state.Delivery {
	first := ds[0]
	for _, d := range ds[1:] {
		if c := d.Cutoff.Compare(first.Cutoff); c < 0 || c == 0 && d.BatchID < first.BatchID {
			first = d
		}
	}
	return first
}

// runs collects instance changes, merging consecutive ones apply has no
// work for.
type runs struct {
	out  []providers.InstanceChange
	last time.Time // the open run's last period
}

func (r *runs) add(ic providers.InstanceChange, key time.Time) {
	if n := len(r.out); n > 0 && !ic.Actionable() {
		prev := &r.out[n-1]
		if !prev.Actionable() && prev.Action == ic.Action && prev.Reason == ic.Reason && prev.Settled == ic.Settled {
			prev.Count = prev.N() + 1
			r.last = key
			return
		}
	}
	r.close()
	ic.Key = Key(key)
	r.out = append(r.out, ic)
	r.last = key
}

func (r *runs) close() {
	if n := len(r.out); n > 0 && r.out[n-1].Count > 1 {
		r.out[n-1].Through = Key(r.last)
	}
}

func (r *runs) done() []providers.InstanceChange {
	r.close()
	return r.out
}

// instance decides one period holding n landed deliveries; false when the
// period is no longer expected and nothing of it is kept.
func (p *Picture) instance(req *Request, supplier string, pp *Period, n int, now time.Time) (providers.InstanceChange, bool) {
	sourceReady := req.SourceReady
	if special, ok := p.ending(req, pp, n); ok {
		return special, special.Action != ""
	}
	var ic providers.InstanceChange
	var fetch, repair, blocked, waiting, superseded []string
	for _, b := range pp.Batches {
		switch {
		case b.Superseded != "":
			superseded = append(superseded, "batch "+b.ID+" superseded by full extract "+b.Superseded)
		case len(b.Repair) > 0:
			var parts []string
			for _, f := range b.Repair {
				parts = append(parts, f.Reason)
			}
			repair = append(repair, "batch "+b.ID+": "+strings.Join(parts, ", "))
		case b.Problem != "":
			waiting = append(waiting, "batch "+b.ID+" "+b.Problem)
		case b.Blocked != "":
			blocked = append(blocked, "batch "+b.ID+": "+b.Blocked)
		case b.Delivery != nil:
			fetch = append(fetch, fmt.Sprintf("%d late file(s) for landed batch %s", b.Late, b.ID))
		default:
			fetch = append(fetch, "delivered, not yet landed")
		}
	}
	switch {
	case len(repair) > 0:
		ic.Action, ic.Reason = providers.Repair, strings.Join(repair, "; ")
	case len(fetch) > 0:
		ic.Action, ic.Reason = providers.Fetch, dedupe(fetch)
	case len(blocked) > 0:
		ic.Action, ic.Reason = providers.Blocked, strings.Join(blocked, "; ")
	case n > 0:
		ic.Action = providers.Landed
	case len(pp.Quarantined) > 0:
		ic.Action, ic.Reason, ic.Settled = providers.Quarantine, firstQuarantined(pp.Quarantined).Reason, true
	case len(waiting) > 0:
		ic.Action, ic.Reason = providers.Wait, strings.Join(waiting, "; ")
	case len(superseded) > 0:
		ic.Action, ic.Reason, ic.Settled = providers.Withdrawn, strings.Join(superseded, "; ")+" (its data is included there)", true
	case p.Full != nil && pp.Key.Before(p.Sched.PeriodOf(p.Full.Cutoff)):
		ic.Action, ic.Reason, ic.Settled = providers.Withdrawn, "no delivery of its own; covered by full extract "+p.Full.BatchID, true
	case now.Before(pp.Key):
		ic.Action, ic.Reason = providers.Wait, "not yet due"
	case now.Before(p.Sched.Deadline(pp.Key)):
		ic.Action, ic.Reason = providers.Wait, "expected by "+p.Sched.Deadline(pp.Key).Format("2006-01-02 15:04 MST")
	case !sourceReady:
		ic.Action, ic.Reason, ic.Settled = providers.Awaiting, "no delivery yet; the source awaits "+supplier+"'s setup", true
	case p.Requested[Key(pp.Key)] != nil:
		ic.Action, ic.Reason, ic.Settled = providers.Awaiting, "re-extract requested "+p.Requested[Key(pp.Key)].Created.Format(time.DateOnly), true
	default:
		ic.Action, ic.Reason = providers.Request, "no delivery by "+p.Sched.Deadline(pp.Key).Format("2006-01-02 15:04 MST")+"; ask "+supplier+" to re-extract"
	}
	return ic, true
}

// ending decides periods after the extract's end or past retention: what
// landed there is listed (withdrawn), removed on request (purge), or
// removed because retention says so (expire); nothing is fetched.
func (p *Picture) ending(req *Request, pp *Period, n int) (providers.InstanceChange, bool) {
	switch {
	case req.Withdrawn(pp.Key) && n > 0 && req.Env.PurgeWithdrawn:
		return providers.InstanceChange{Action: providers.Purge, Reason: fmt.Sprintf("remove %d landed batch(es): %s", n, req.Ends.Reason)}, true
	case req.Withdrawn(pp.Key) && n > 0:
		return providers.InstanceChange{Action: providers.Withdrawn, Settled: true,
			Reason: fmt.Sprintf("%d batch(es) landed after %s; `im1 apply -purge-withdrawn` removes them", n, req.Ends.Reason)}, true
	case req.Withdrawn(pp.Key):
		return providers.InstanceChange{Action: providers.Withdrawn, Settled: true, Reason: "not fetched: " + req.Ends.Reason}, true
	case req.Expired(pp.Key) && n > 0:
		return providers.InstanceChange{Action: providers.Expire, Reason: fmt.Sprintf("%d landed batch(es) past the retention of %s", n, req.Schedule.Retention)}, true
	case req.Expired(pp.Key):
		return providers.InstanceChange{}, true // no longer expected, nothing kept
	}
	return providers.InstanceChange{}, false
}

// Remove carries out purge and expire for a period: every landed delivery
// in it is removed, with its archive folder (archiveOf names it).
func (p *Picture) Remove(ctx context.Context, req *Request, key string, archiveOf func(*state.Delivery) string) error {
	pp := p.Periods[key]
	if pp == nil {
		return nil
	}
	status, why := state.DeliveryWithdrawn, req.Ends.Reason
	if !req.Withdrawn(pp.Key) {
		status, why = state.DeliveryExpired, "past the retention of "+req.Schedule.Retention.String()
	}
	for _, d := range pp.Landed {
		if err := RemoveLanded(ctx, req.Env, d, archiveOf(d), status, why); err != nil {
			return err
		}
	}
	return nil
}

func dedupe(xs []string) string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return strings.Join(out, "; ")
}

// BrokenFiles finds landed files that are missing or changed: a cheap
// stat first, a re-hash only when size or time says the file was touched.
// The returned files carry the finding in Reason.
func BrokenFiles(ctx context.Context, store state.Store, dir *landing.Dir, d *state.Delivery) ([]state.File, error) {
	files, err := store.Files(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	var out []state.File
	for _, f := range files {
		if f.Status != state.FileLanded {
			continue
		}
		f.Reason = ""
		if dir == nil {
			f.Reason = f.Table + " missing"
			out = append(out, f)
			continue
		}
		fi, err := dir.Stat(f.LandedPath)
		switch {
		case err != nil:
			f.Reason = f.Table + " missing"
		case fi.Size() != f.LandedSize:
			f.Reason = f.Table + " changed (size)"
		case fi.ModTime().After(d.Updated.Add(time.Second)):
			sum, _, err := dir.Hash(f.LandedPath)
			if err != nil || sum != f.LandedSHA256 {
				f.Reason = f.Table + " changed (sha256)"
			}
		}
		if f.Reason != "" {
			out = append(out, f)
		}
	}
	return out, nil
}

// OpenLanding opens the landing root if it exists (plan never creates it).
func OpenLanding(path string) (*landing.Dir, error) {
	if path == "" {
		return nil, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, nil
	}
	return landing.OpenDir(path, 0o640, 0o750)
}

// DirName turns an address into one safe path element:
// emis_site.per_org["A81001"] -> per_org-A81001.
func DirName(addr string) string {
	name := addr
	if i := strings.Index(name, "."); i >= 0 {
		name = name[i+1:]
	}
	return dirNamer.Replace(name)
}

// dirNamer is built once: a Replacer costs more to build than to use, and
// a national plan names 7,000 directories.
var dirNamer = strings.NewReplacer(`["`, "-", `"]`, "", "[", "-", "]", "", `"`, "", "/", "_", `\`, "_")

// RequestID names the re-extract request for one expected delivery.
func RequestID(extractAddr, key string) string { return DirName(extractAddr) + "-" + key }

// WriteRequest hands the supplier a re-extract request for a missing
// delivery and records it as awaiting the supplier.
func WriteRequest(ctx context.Context, env *providers.Env, supplier, sourceAddr, extractAddr, key string, payload map[string]any, note string) error {
	id := RequestID(extractAddr, key)
	dir := handoff.Dir(env.Dirs.Handoff, supplier, DirName(sourceAddr))
	payload["extract"], payload["source"], payload["day"] = extractAddr, sourceAddr, key
	md := fmt.Sprintf("# Re-extract request\n\nExtract `%s` from `%s` has no delivery for %s.\n%s\n", extractAddr, sourceAddr, key, note)
	p, err := handoff.Write(dir, handoff.ReextractRequest, id, extractAddr, env.Now(), payload, ".md", []byte(md))
	if err != nil {
		return err
	}
	now := env.Now().UTC()
	return env.Store.Tx(ctx, func(tx state.Tx) error {
		return tx.PutHandoff(state.Handoff{ID: id, Source: extractAddr, Kind: handoff.ReextractRequest, Path: p, Status: state.HandoffAwaiting, Created: now, Updated: now})
	})
}

// RequestAnswered marks a re-extract request done inside the transaction
// that lands its delivery: the delivery is the proof. A full extract
// answers every open request before it.
func RequestAnswered(tx state.Tx, env *providers.Env, extractAddr, key string, full bool) error {
	hs, err := env.Store.Handoffs(context.Background(), extractAddr)
	if err != nil {
		return err
	}
	for _, h := range hs {
		covered := full && h.ID < RequestID(extractAddr, key)
		if h.Kind == handoff.ReextractRequest && (h.ID == RequestID(extractAddr, key) || covered) && h.Status != state.HandoffDone {
			h.Status, h.Updated = state.HandoffDone, env.Now().UTC()
			if err := tx.PutHandoff(h); err != nil {
				return err
			}
		}
	}
	return nil
}

// Landing is one delivery's files, verified and staged, ready to promote.
type Landing struct {
	Delivery *state.Delivery
	// Files are all the delivery's landed files (for the manifest);
	// Fresh are the rows this landing writes (new or repaired files).
	Files []state.File
	Fresh []*state.File
	// Staged are the verified files still under their .partial names.
	Staged   []*landing.Pending
	Manifest *landing.Manifest
	// Resume is a delivery a crashed run left pending: replaced, not doubled.
	Resume *state.Delivery
	// Observe reads what the promoted files say about organisations.
	Observe func() ([]state.Observation, error)
	// Extra runs in the final transaction (provider-specific proof).
	Extra func(state.Tx) error
}

// Commit promotes a verified delivery in two recorded steps, so a crash at
// any point leaves state and landing consistent: first the delivery and
// its files' hashes are recorded as pending; then the staged files are
// renamed into place, manifest.json is written last in the batch
// directory (the ready marker for downstream loaders), and the delivery is
// recorded as landed. A delivery left pending is landed again by the next
// apply, to the same bytes.
func Commit(ctx context.Context, env *providers.Env, land *landing.Dir, l Landing) error {
	// Once verified, a delivery's landing is finished even if an interrupt
	// arrives meanwhile: it is a few renames and two short transactions.
	ctx = context.WithoutCancel(ctx)
	d := l.Delivery
	if d.Status != state.DeliveryLanded {
		d.Status, d.Reason = state.DeliveryPending, ""
	}
	if err := env.Store.Tx(ctx, func(tx state.Tx) error {
		if l.Resume != nil {
			if err := tx.DeleteDelivery(l.Resume.ID); err != nil {
				return err
			}
		}
		if err := tx.PutDelivery(d); err != nil {
			return err
		}
		for _, f := range l.Fresh {
			f.DeliveryID = d.ID
			if err := tx.PutFile(f); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		for _, p := range l.Staged {
			p.Abort()
		}
		return err
	}
	failpoint.Hit("after-pending-commit")
	for i, p := range l.Staged {
		if i == 1 {
			failpoint.Hit("between-renames")
		}
		if err := p.Commit(); err != nil {
			for _, q := range l.Staged[i:] {
				q.Abort()
			}
			return err
		}
	}
	failpoint.Hit("after-rename")
	var obs []state.Observation
	if l.Observe != nil {
		var err error
		if obs, err = l.Observe(); err != nil {
			return err
		}
	}
	m := l.Manifest
	m.Version, m.Extract, m.Source, m.Day, m.BatchID, m.Kind = landing.ManifestVersion, d.Extract, d.Source, d.Day, d.BatchID, d.Kind
	m.SeqFrom, m.SeqTo, m.Created = d.SeqFrom, d.SeqTo, env.Now().UTC()
	m.Files = m.Files[:0]
	for _, f := range l.Files {
		m.Files = append(m.Files, landing.ManifestFile{Table: f.Table, Path: pathBase(f.LandedPath), SHA256: f.LandedSHA256,
			Bytes: f.LandedSize, Rows: f.Rows, Deleted: f.DeletedRows, BadNHS: f.BadNHS, RemoteName: f.RemoteName, KeyFingerprint: f.KeyID})
	}
	sum, err := landing.WriteManifest(land, d.Path+"/"+landing.ManifestName, m)
	if err != nil {
		return err
	}
	failpoint.Hit("before-landed-commit")
	d.Status, d.Reason, d.Manifest = state.DeliveryLanded, "", sum
	err = env.Store.Tx(ctx, func(tx state.Tx) error {
		if err := failpoint.Err("landed-commit"); err != nil {
			return err
		}
		if err := tx.PutDelivery(d); err != nil {
			return err
		}
		if obs != nil {
			if err := tx.PutObservations(d.ID, obs); err != nil {
				return err
			}
		}
		if err := RequestAnswered(tx, env, d.Extract, d.Day, d.Kind == "full"); err != nil {
			return err
		}
		if l.Extra != nil {
			return l.Extra(tx)
		}
		return nil
	})
	if err != nil {
		// The files are in place and their hashes recorded; only the last
		// word is missing. Say where they are; the next apply finishes it.
		var paths []string
		for _, f := range l.Files {
			paths = append(paths, f.LandedPath)
		}
		return fmt.Errorf("recording batch %s as landed failed: %w. Its verified files are in place and recorded as pending (%s); the next apply re-checks them and finishes the batch", d.BatchID, err, strings.Join(paths, ", "))
	}
	failpoint.Hit("after-landed-commit")
	return nil
}

func pathBase(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
