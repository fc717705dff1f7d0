package emis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"github.com/hashicorp/hcl/v2"

	"github.com/im1dev/im1/internal/failpoint"
	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/check"
	"github.com/im1dev/im1/providers/emis/emisfile"
	"github.com/im1dev/im1/providers/emis/sftpsite"
	"github.com/im1dev/im1/providers/extract"
	"github.com/im1dev/im1/providers/handoff"
	"github.com/im1dev/im1/providers/landing"
	"github.com/im1dev/im1/providers/pgpkey"
	"github.com/im1dev/im1/state"
)

// PlanExtract implements extract.Source.
func (p *Provider) PlanExtract(ctx context.Context, req *extract.Request) ([]providers.InstanceChange, hcl.Diagnostics, error) {
	if !req.Source.IsWhollyKnown() {
		// The site itself is still to be created (a new key's fingerprint
		// is known only after apply): its deliveries are planned then.
		return nil, nil, nil
	}
	if req.Env.Applying {
		p.prepareKeys(ctx, req.Env, recipientKeys(req))
	}
	var entries []sftpsite.Entry
	if !req.Env.NoRefresh {
		var err error
		if entries, err = p.list(ctx, req.Source, req.Env, false); err != nil {
			return nil, nil, err
		}
	}
	pic, err := p.planExtract(ctx, req, entries)
	if err != nil {
		return nil, nil, err
	}
	inst := pic.Instances(req, "EMIS")
	pic.Release()
	return inst, pic.Diags, nil
}

// run is one apply of one extract.
type run struct {
	p       *Provider
	req     *extract.Request
	env     *providers.Env
	client  *sftpsite.Client
	keys    openpgp.EntityList
	signers openpgp.EntityList
	archive *landing.Dir
	land    *landing.Dir
	diags   hcl.Diagnostics
}

// ApplyExtract implements extract.Source: fetch, verify, land, repair, and
// request what is missing. Nothing half-done is recorded as landed.
func (p *Provider) ApplyExtract(ctx context.Context, req *extract.Request, changes []providers.InstanceChange) hcl.Diagnostics {
	var diags hcl.Diagnostics
	fail := func(summary string, err error) hcl.Diagnostics {
		return append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error()})
	}
	env := req.Env
	r := &run{p: p, req: req, env: env}
	// Only fetching and repairing need the site and the private keys.
	needSite := false
	for _, c := range changes {
		needSite = needSite || c.Action == providers.Fetch || c.Action == providers.Repair
	}
	var err error
	var entries []sftpsite.Entry
	// Removing withdrawn or expired data and writing requests need no
	// site: a decommissioned one must not stop them.
	if needSite {
		if r.client, err = p.client(ctx, req.Source, env); err != nil {
			return fail("cannot reach the EMIS site", err)
		}
		if entries, err = p.list(ctx, req.Source, env, true); err != nil {
			return fail("cannot list the EMIS site", err)
		}
		var unstable []string
		if entries, unstable, err = r.stable(ctx, entries); err != nil {
			return fail("checking the site listing", err)
		}
		for _, n := range unstable {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "still being uploaded: " + n, Detail: "Two listings disagreed on its size or time; it is fetched on a later run."})
		}
	}
	pic, err := p.planExtract(ctx, req, entries)
	if err != nil {
		return fail("planning the extract", err)
	}
	if r.archive, r.land, err = extract.OpenDirs(env); err != nil {
		return fail("opening the archive and landing directories", err)
	}
	defer r.archive.Close()
	defer r.land.Close()
	if needSite {
		if r.keys, err = p.decryptionKeys(ctx, req); err != nil {
			return fail("unlocking the recipient keys", err)
		}
		if f := providers.String(req.Source, "sender_key_file"); f != "" {
			b, err := os.ReadFile(resolve(env, f))
			if err != nil {
				return fail("reading sender_key_file", err)
			}
			e, err := pgpkey.ParsePublic(string(b))
			if err != nil {
				return fail("parsing sender_key_file", err)
			}
			r.signers = openpgp.EntityList{e}
		}
	}
	diags = append(diags, pic.Apply(ctx, req, changes, r, extract.RequestNote{
		Supplier: "emis",
		Payload:  map[string]any{"sharing_agreement": providers.String(req.Source, "sharing_agreement")},
		Text:     "Please re-extract it for sharing agreement " + providers.String(req.Source, "sharing_agreement") + ".",
	})...)
	return append(diags, r.diags...)
}

// stable keeps the files that two listings agree on: an earlier listing
// recorded in state, or one taken stable_after ago in this run.
func (r *run) stable(ctx context.Context, entries []sftpsite.Entry) ([]sftpsite.Entry, []string, error) {
	src := providers.String(r.req.Source, "address")
	prior := map[string]state.Listing{}
	ls, err := r.env.Store.Listings(ctx, src)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range ls {
		prior[l.Name] = l
	}
	same := func(e sftpsite.Entry, l state.Listing) bool {
		return e.Size == l.Size && e.MTime.Equal(l.MTime)
	}
	var unconfirmed []sftpsite.Entry
	for _, e := range entries {
		if l, ok := prior[e.Name]; !ok || !same(e, l) {
			unconfirmed = append(unconfirmed, e)
		}
	}
	now := r.env.Now().UTC()
	record := func(list []sftpsite.Entry) error {
		return r.env.Store.Tx(ctx, func(tx state.Tx) error {
			for _, e := range list {
				l := state.Listing{Source: src, Name: e.Name, Size: e.Size, MTime: e.MTime, FirstSeen: now, LastSeen: now}
				if p, ok := prior[e.Name]; ok && same(e, p) {
					l.FirstSeen = p.FirstSeen
				}
				if err := tx.PutListing(l); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if len(unconfirmed) == 0 {
		return entries, nil, record(entries)
	}
	if err := record(unconfirmed); err != nil {
		return nil, nil, err
	}
	wait, _ := check.ParseDuration(providers.String(r.req.Source, "stable_after"))
	select {
	case <-time.After(wait):
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	again, err := r.p.list(ctx, r.req.Source, r.env, true)
	if err != nil {
		return nil, nil, err
	}
	first := map[string]sftpsite.Entry{}
	for _, e := range unconfirmed {
		first[e.Name] = e
	}
	var out []sftpsite.Entry
	var unstable []string
	for _, e := range again {
		f, wasNew := first[e.Name]
		switch {
		case !wasNew:
			// Confirmed by an earlier run's listing: still only if unchanged.
			if l, ok := prior[e.Name]; ok && same(e, l) {
				out = append(out, e)
			} else if _, err := emisfile.ParseName(e.Name); err == nil {
				unstable = append(unstable, e.Name)
			}
		case f.Size == e.Size && f.MTime.Equal(e.MTime):
			out = append(out, e)
		default:
			if _, err := emisfile.ParseName(e.Name); err == nil {
				unstable = append(unstable, e.Name)
			}
		}
	}
	return out, unstable, record(out)
}

// landed is one verified file waiting for the batch to complete.
type landed struct {
	name    emisfile.Name
	table   string
	pending *landing.Pending
	stats   landing.Stats
	file    state.File
}

// fetchBatch downloads, archives, decrypts, validates and lands one batch
// (or its late files). Files land only when every file of the batch has
// passed decryption, integrity and CSV checks; then manifest.json is
// written last and state is committed.
// Fetch implements extract.Worker.
func (r *run) Fetch(ctx context.Context, pp *extract.Period, eb *extract.Batch) error {
	bp := eb.Detail.(*batchPlan)
	b := bp.batch
	src := providers.String(r.req.Source, "address")
	day := extract.Key(pp.Key)
	batchDir := extract.LandingDir(r.req.Addr, src, day, b.ID)
	if eb.Delivery != nil {
		// Late files join the batch where it landed, whatever the period
		// arithmetic says today.
		batchDir, day = eb.Delivery.Path, eb.Delivery.Day
	}
	archDir := extract.ArchiveDir(r.req.Addr, src, b.ID)
	results := make([]*landed, len(bp.fetch))
	errs := make([]error, len(bp.fetch))
	quarantine := make([]bool, len(bp.fetch))
	workers := r.p.Workers
	if workers <= 0 {
		workers = 4
	}
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i, n := range bp.fetch {
		wg.Add(1)
		go func(i int, n emisfile.Name) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			e := bp.entries[n.Raw]
			archRel := path.Join(archDir, n.Raw)
			sum, size, err := r.download(ctx, n.Raw, e, archRel)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", n.Raw, err)
				return
			}
			failpoint.Hit("after-download")
			l, err := r.verify(n, archRel, path.Join(batchDir, n.FileType()+".csv"))
			if err != nil {
				// A bad file quarantines the batch; a local fault (disk
				// full, permissions) is retried by the next apply.
				errs[i], quarantine[i] = fmt.Errorf("%s: %w", n.Raw, err), dataFault(err)
				return
			}
			failpoint.Hit("after-decrypt")
			l.file.RemoteSize, l.file.RemoteMTime = e.Size, e.MTime
			l.file.ArchivePath, l.file.ArchiveSHA256, l.file.ArchiveSize = archRel, sum, size
			results[i] = l
		}(i, n)
	}
	wg.Wait()
	abort := func() {
		for _, l := range results {
			if l != nil {
				l.pending.Abort()
			}
		}
	}
	var transport, bad []error
	for i, err := range errs {
		if err == nil {
			continue
		}
		if quarantine[i] {
			bad = append(bad, err)
		} else {
			transport = append(transport, err)
		}
	}
	if len(transport) > 0 {
		abort()
		return fmt.Errorf("batch %s not fetched (retried later): %w", b.ID, errors.Join(transport...))
	}
	d := eb.Delivery
	if d == nil {
		d = &state.Delivery{Extract: r.req.Addr, Source: src, Day: day, BatchID: b.ID, Kind: eb.Kind,
			SeqFrom: strconv.FormatInt(b.ProcStart, 10), SeqTo: strconv.FormatInt(b.ProcEnd, 10),
			Cutoff: b.Time, Path: batchDir}
	}
	if len(bad) > 0 {
		abort()
		reason := firstLine(errors.Join(bad...).Error())
		r.diags = append(r.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "batch " + b.ID + " quarantined: " + reason,
			Detail: "Nothing of this batch was landed. The ciphertext stays in the archive as evidence: " + path.Join(r.archive.Path(), archDir) + ". " + errors.Join(bad...).Error()})
		if eb.Delivery != nil {
			return nil // late files of a landed batch: the landed part stands
		}
		d.Status, d.Reason = state.DeliveryQuarantined, reason
		if err := r.env.Store.Tx(ctx, func(tx state.Tx) error { return tx.PutDelivery(d) }); err != nil {
			return err
		}
		return extract.ErrQuarantined
	}
	// Files already landed under this batch (late files add to them).
	var files []state.File
	if eb.Delivery != nil {
		prev, err := r.env.Store.Files(ctx, d.ID)
		if err != nil {
			return err
		}
		files = prev
	}
	var fresh []*state.File
	rows := map[string]int64{}
	if eb.Delivery != nil {
		rows = r.priorRows(ctx, d)
	}
	for _, l := range results {
		files = append(files, l.file)
		fresh = append(fresh, &l.file)
		if l.table != emisfile.SharingOrganisation && l.table != emisfile.AdminOrganisation {
			for g, n := range l.stats.PerOrg {
				rows[strings.ToUpper(g)] += n
			}
		}
	}
	l := extract.Landing{Delivery: d, Files: files, Fresh: fresh, Resume: eb.Resume,
		Manifest: &landing.Manifest{Supplier: "emis", Cutoff: emisCutoff(d.Cutoff, r.env.Zone)},
		Observe: func() ([]state.Observation, error) {
			obs, err := r.observations(d, files, rows)
			if err != nil {
				r.diags = append(r.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "batch " + b.ID + ": organisation files unreadable", Detail: err.Error()})
			}
			return obs, nil
		},
		Extra: func(tx state.Tx) error { return r.keyProven(tx, results) },
	}
	for _, res := range results {
		l.Staged = append(l.Staged, res.pending)
	}
	return extract.Commit(ctx, r.env, r.land, l)
}

// keyProven marks the public-key handoff done once a batch decrypted with it.
func (r *run) keyProven(tx state.Tx, results []*landed) error {
	src := providers.String(r.req.Source, "address")
	hs, err := r.env.Store.Handoffs(context.Background(), src)
	if err != nil {
		return err
	}
	for _, h := range hs {
		if h.Kind != handoff.PublicKey || h.Status == state.HandoffDone {
			continue
		}
		for _, l := range results {
			if h.ID == publicKeyHandoffID(src, l.file.KeyID) {
				h.Status, h.Updated = state.HandoffDone, r.env.Now().UTC()
				if err := tx.PutHandoff(h); err != nil {
					return err
				}
				// The delivery is the proof the site waited for.
				site, err := r.env.Store.Resource(context.Background(), src)
				if err != nil {
					return err
				}
				if site != nil && site.Status == state.StatusAwaitingSupplier {
					site.Status = state.StatusReady
					if err := tx.PutResource(*site); err != nil {
						return err
					}
				}
				break
			}
		}
	}
	return nil
}

// download streams a remote file into the archive (.partial, fsync,
// rename), hashing as it goes.
func (r *run) download(ctx context.Context, name string, e sftpsite.Entry, archRel string) (string, int64, error) {
	pend, err := r.archive.Create(archRel)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	var w io.Writer = io.MultiWriter(pend, h)
	if r.env.Progress != nil {
		pw := r.env.Progress.Start(name, e.Size)
		defer pw.Close()
		w = io.MultiWriter(w, pw)
	}
	n, err := r.client.Fetch(ctx, name, w, e.Size)
	if err != nil {
		pend.Abort()
		return "", 0, err
	}
	if err := pend.Commit(); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

var errUnknownType = errors.New("unknown EMIS CSV file type")

// dataFault reports whether a verification error is about the file itself
// (quarantine it) rather than about this machine (retry it): decryption
// and integrity failures, CSV format problems, an unknown file type.
func dataFault(err error) bool {
	var fe *landing.FormatError
	switch {
	case errors.As(err, &fe), errors.Is(err, errUnknownType):
		return true
	}
	for _, e := range []error{pgpkey.ErrNotEncrypted, pgpkey.ErrNoKey, pgpkey.ErrNotIntegrityProtected,
		pgpkey.ErrIntegrity, pgpkey.ErrSignature, pgpkey.ErrTooLarge, pgpkey.ErrMalformed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// verify decrypts an archived file and validates its CSV into a pending
// landed file. Nothing it finds counts until the integrity check passed
// at end of file, and the pending file is not yet renamed into place.
func (r *run) verify(n emisfile.Name, archRel, landRel string) (l *landed, err error) {
	t, ok := emisfile.Lookup(n.FileType())
	if !ok {
		return nil, fmt.Errorf("%w %s", errUnknownType, n.FileType())
	}
	f, err := r.archive.Open(archRel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pt, err := pgpkey.Decrypt(f, pgpkey.DecryptOptions{Keys: r.keys, Signers: r.signers, RequireSignature: len(r.signers) > 0})
	if err != nil {
		return nil, err
	}
	pend, err := r.land.Create(landRel)
	if err != nil {
		return nil, err
	}
	spec := landing.CSVSpec{Delimiter: ',', Quote: '"', Encoding: landing.UTF8, NHSColumn: t.NHSColumn, OrgColumn: t.OrgColumn}
	if t.HasDeleted {
		spec.DeletedColumn, spec.DeletedValue = "Deleted", "true"
	}
	spec.Versions = t.Versions
	stats, err := landing.Check(pt, pend, spec)
	if err != nil {
		pend.Abort()
		return nil, err
	}
	return &landed{name: n, table: n.FileType(), pending: pend, stats: stats, file: state.File{
		Table: n.FileType(), RemoteName: n.Raw, LandedPath: landRel, LandedSHA256: stats.SHA256, LandedSize: stats.Bytes,
		Rows: stats.Rows, DeletedRows: stats.Deleted, BadNHS: stats.BadNHS, KeyID: pt.KeyFingerprint, Status: state.FileLanded,
	}}, nil
}

// emisCutoff is midnight before the extract ran: EMIS cuts data off at
// midnight (SR ticket SD-319).
func emisCutoff(t time.Time, zone *time.Location) time.Time {
	if zone == nil {
		zone = time.UTC
	}
	l := t.In(zone)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, zone)
}

// priorRows is the per-organisation row counts recorded for a delivery.
func (r *run) priorRows(ctx context.Context, d *state.Delivery) map[string]int64 {
	out := map[string]int64{}
	obs, err := r.env.Store.Observations(ctx, d.Source)
	if err != nil {
		return out
	}
	for _, o := range obs {
		if o.DeliveryID == d.ID {
			out[o.OrgGUID] = o.Rows
		}
	}
	return out
}

// observations reads the batch's sharing-agreement and organisation files
// as landed, joined by OrganisationGuid; rows are the dataset's rows per
// OrganisationGuid (upper case), for coverage reports.
func (r *run) observations(d *state.Delivery, files []state.File, rows map[string]int64) ([]state.Observation, error) {
	var sharing []emisfile.SharingOrg
	var orgs []emisfile.Org
	for _, f := range files {
		switch f.Table {
		case emisfile.SharingOrganisation, emisfile.AdminOrganisation:
		default:
			continue
		}
		fh, err := r.land.Open(f.LandedPath)
		if err != nil {
			return nil, err
		}
		if f.Table == emisfile.SharingOrganisation {
			sharing, err = emisfile.ParseSharingOrganisations(fh)
		} else {
			orgs, err = emisfile.ParseOrganisations(fh)
		}
		fh.Close()
		if err != nil {
			return nil, err
		}
	}
	if sharing == nil && orgs == nil {
		return nil, nil
	}
	byGUID := map[string]*state.Observation{}
	get := func(g string) *state.Observation {
		g = strings.ToUpper(g)
		o := byGUID[g]
		if o == nil {
			o = &state.Observation{Source: d.Source, OrgGUID: g}
			byGUID[g] = o
		}
		return o
	}
	for _, s := range sharing {
		o := get(s.OrganisationGuid)
		o.IsActivated, o.Disabled, o.Deleted = s.IsActivated, s.Disabled, s.Deleted
	}
	for _, og := range orgs {
		o := get(og.OrganisationGuid)
		o.ODS, o.Name = og.ODSCode, og.Name
	}
	out := make([]state.Observation, 0, len(byGUID))
	for g, o := range byGUID {
		o.Rows = rows[g]
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OrgGUID < out[j].OrgGUID })
	return out, nil
}

// repair re-lands missing or changed files: from the archived ciphertext
// when its hash still matches, else downloaded again.
// Repair implements extract.Worker.
func (r *run) Repair(ctx context.Context, eb *extract.Batch) (err error) {
	d := eb.Delivery
	var fixed []*state.File
	var staged []*landing.Pending
	defer func() {
		if err != nil {
			for _, p := range staged {
				p.Abort() // no .partial left behind by a failed repair
			}
		}
	}()
	for i := range eb.Repair {
		f := &eb.Repair[i]
		sum, _, err := r.archive.Hash(f.ArchivePath)
		if err != nil || sum != f.ArchiveSHA256 {
			e := sftpsite.Entry{Name: f.RemoteName, Size: f.RemoteSize, MTime: f.RemoteMTime}
			if sum, _, err = r.download(ctx, f.RemoteName, e, f.ArchivePath); err != nil {
				return fmt.Errorf("repairing %s: archive unusable and re-download failed: %w", f.LandedPath, err)
			}
			if sum != f.ArchiveSHA256 {
				return fmt.Errorf("repairing %s: the site now serves different bytes under %s", f.LandedPath, f.RemoteName)
			}
		}
		n, err := emisfile.ParseName(f.RemoteName)
		if err != nil {
			return err
		}
		l, err := r.verify(n, f.ArchivePath, f.LandedPath)
		if err != nil {
			return fmt.Errorf("repairing %s: %w", f.LandedPath, err)
		}
		if l.stats.SHA256 != f.LandedSHA256 {
			l.pending.Abort()
			return fmt.Errorf("repairing %s: re-landed content differs from what was recorded", f.LandedPath)
		}
		staged = append(staged, l.pending)
		f.Reason = ""
		fixed = append(fixed, f)
	}
	all, err := r.env.Store.Files(ctx, d.ID)
	if err != nil {
		return err
	}
	// Re-landed files have the bytes recorded, so the row counts stand.
	rows := r.priorRows(ctx, d)
	return extract.Commit(ctx, r.env, r.land, extract.Landing{Delivery: d, Files: all, Fresh: fixed, Staged: staged,
		Manifest: &landing.Manifest{Supplier: "emis", Cutoff: emisCutoff(d.Cutoff, r.env.Zone)},
		Observe:  func() ([]state.Observation, error) { return r.observations(d, all, rows) },
	})
}
