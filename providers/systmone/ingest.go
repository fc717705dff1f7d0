package systmone

import (
	"archive/zip"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/im1dev/im1/internal/failpoint"
	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/extract"
	"github.com/im1dev/im1/providers/handoff"
	"github.com/im1dev/im1/providers/landing"
	"github.com/im1dev/im1/providers/systmone/srfile"
	"github.com/im1dev/im1/state"
)

// folder is one extract folder in the gateway root.
type folder struct {
	name  string
	time  time.Time
	files []string
	man   *srfile.Manifest
}

// required are the files every complete extract folder holds.
var required = []string{srfile.ManifestFile, srfile.ExtractZip, srfile.MappingFile, srfile.MappingGroupFile}

// scan lists the gateway root: complete extract folders, and anything else
// worth a word (folders still being written are left alone).
func scan(root string) ([]*folder, hcl.Diagnostics, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "gateway root " + root + " does not exist yet",
			Detail: "The SystmOne client writes extracts there once the report is configured."}}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var out []*folder
	var diags hcl.Diagnostics
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		t, ok := srfile.ParseFolder(name)
		if !e.IsDir() || !ok {
			continue // in progress (a temporary name) or not an extract
		}
		f := &folder{name: name, time: t}
		inner, err := os.ReadDir(filepath.Join(root, name))
		if err != nil {
			return nil, nil, err
		}
		for _, x := range inner {
			if x.Type().IsRegular() {
				f.files = append(f.files, x.Name())
			}
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].time.Before(out[j].time) })
	return out, diags, nil
}

func (f *folder) missing() []string {
	have := map[string]bool{}
	for _, n := range f.files {
		have[n] = true
	}
	var miss []string
	for _, r := range required {
		if !have[r] {
			miss = append(miss, r)
		}
	}
	return miss
}

// readManifest parses a folder's SRManifest.csv.
func readManifest(dir string) (*srfile.Manifest, error) {
	fh, err := os.Open(filepath.Join(dir, srfile.ManifestFile))
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	m, err := srfile.ParseManifest(fh)
	if err != nil {
		return nil, err
	}
	return m, m.Check()
}

// picture works out what each expected delivery needs. It reads only.
func (p *Provider) picture(ctx context.Context, req *extract.Request) (*extract.Picture, []*folder, error) {
	env := req.Env
	src := providers.String(req.Source, "address")
	root := rootDir(req.Source, env)
	var folders []*folder
	var diags hcl.Diagnostics
	if !env.NoRefresh || req.Applying {
		var err error
		if folders, diags, err = scan(root); err != nil {
			return nil, nil, err
		}
	}
	pic := extract.NewPicture(req.Schedule)
	pic.Diags = diags
	byBatch, err := pic.Load(ctx, req, src)
	if err != nil {
		return nil, nil, err
	}
	if err := pic.FindRepairs(ctx, env, req.Applying); err != nil {
		return nil, nil, err
	}
	// The delta chain: each extract's DateExtractFrom must not come after
	// the previous DateExtractTo (a gap); an overlap (re-bulk) is reported.
	var prevTo time.Time
	for _, d := range byBatch {
		if d.Status == state.DeliveryLanded {
			if t, err := time.Parse(srfile.DateLayout, d.SeqTo); err == nil && t.After(prevTo) {
				prevTo = t
			}
		}
	}
	// A full extract makes every earlier delta not yet landed moot.
	var fullAt time.Time
	fullName := ""
	for _, d := range byBatch {
		if d.Status == state.DeliveryLanded && d.Kind == "full" && d.Cutoff.After(fullAt) {
			fullAt, fullName = d.Cutoff, d.BatchID
		}
	}
	for _, f := range folders {
		if byBatch[f.name] != nil || len(f.missing()) > 0 {
			continue
		}
		if m, err := readManifest(filepath.Join(root, f.name)); err == nil && m.IsFull() && f.time.After(fullAt) {
			fullAt, fullName = f.time, f.name
		}
	}
	gap := ""
	for _, f := range folders {
		d := byBatch[f.name]
		if d != nil && d.Status != state.DeliveryPending {
			continue
		}
		b := &extract.Batch{ID: f.name, Time: f.time, Detail: f, Kind: "delta", Resume: d}
		pic.Period(f.time).Batches = append(pic.Period(f.time).Batches, b)
		if miss := f.missing(); len(miss) > 0 {
			b.Problem = "incomplete: missing " + strings.Join(miss, ", ")
			continue
		}
		m, err := readManifest(filepath.Join(root, f.name))
		if err != nil {
			continue // apply quarantines it with the reason
		}
		f.man = m
		if !m.IsFull() && f.time.Before(fullAt) {
			b.Superseded = fullName
			continue
		}
		if bulk := rebulkTables(m); len(bulk) > 0 && !m.IsFull() {
			pic.Diags = append(pic.Diags, &hcl.Diagnostic{Severity: hcl.DiagWarning,
				Summary: "TPP re-bulk of " + strings.Join(bulk, ", ") + " in extract " + f.name,
				Detail:  "The manifest sends these tables in full (IsDelta=N) inside a delta extract; they are landed as sent, and rows re-sent unchanged are the downstream loader's to de-duplicate."})
		}
		if m.IsFull() {
			b.Kind = "full"
			gap = "" // a full extract starts the chain again
		}
		switch {
		case gap != "":
			b.Blocked = gap
		case b.Kind == "delta" && !prevTo.IsZero():
			overlap, err := srfile.CheckContinuity(prevTo, m.From())
			if err != nil {
				gap = err.Error()
				b.Blocked = gap
				continue
			}
			if overlap {
				pic.Diags = append(pic.Diags, &hcl.Diagnostic{Severity: hcl.DiagWarning,
					Summary: "extract " + f.name + " overlaps the previous one (a re-bulk)",
					Detail:  fmt.Sprintf("DateExtractFrom %s is before the previous DateExtractTo %s; allowed, and landed as its own batch.", m.From().Format(srfile.DateLayout), prevTo.Format(srfile.DateLayout))})
			}
		}
		if b.Blocked == "" && m.Cutoff().After(prevTo) {
			prevTo = m.Cutoff()
		}
	}
	resumed := map[string]bool{}
	for _, f := range folders {
		resumed[f.name] = true
	}
	if err := pic.FinishPending(ctx, env, resumed); err != nil {
		return nil, nil, err
	}
	return pic, folders, nil
}

// rebulkTables lists tables sent in full within an otherwise delta extract.
func rebulkTables(m *srfile.Manifest) []string {
	var full []string
	delta := false
	for _, r := range m.Rows {
		if r.IsDelta {
			delta = true
		} else if !r.IsReference {
			full = append(full, r.FileName)
		}
	}
	if !delta {
		return nil
	}
	return full
}

// PlanExtract implements extract.Source.
func (p *Provider) PlanExtract(ctx context.Context, req *extract.Request) ([]providers.InstanceChange, hcl.Diagnostics, error) {
	if !req.Source.IsWhollyKnown() {
		return nil, nil, nil
	}
	pic, _, err := p.picture(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	inst := pic.Instances(req, "the SystmOne reporting unit")
	pic.Release()
	return inst, pic.Diags, nil
}

// ingest is one apply of one SystmOne extract.
type ingest struct {
	req     *extract.Request
	env     *providers.Env
	src     string
	root    string
	archive *landing.Dir
	land    *landing.Dir
	diags   hcl.Diagnostics
}

// ApplyExtract implements extract.Source.
func (p *Provider) ApplyExtract(ctx context.Context, req *extract.Request, changes []providers.InstanceChange) hcl.Diagnostics {
	var diags hcl.Diagnostics
	fail := func(summary string, err error) hcl.Diagnostics {
		return append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error()})
	}
	env := req.Env
	pic, _, err := p.picture(ctx, req)
	if err != nil {
		return fail("reading the gateway root", err)
	}
	in := &ingest{req: req, env: env, src: providers.String(req.Source, "address"), root: rootDir(req.Source, env)}
	if in.archive, in.land, err = extract.OpenDirs(env); err != nil {
		return fail("opening the archive and landing directories", err)
	}
	defer in.archive.Close()
	defer in.land.Close()
	diags = append(diags, pic.Apply(ctx, req, changes, in, extract.RequestNote{
		Supplier: Supplier,
		Payload:  map[string]any{"report": in.src},
		Text:     "Please re-run the strategic report for this period in the SystmOne client.",
	})...)
	return append(diags, in.diags...)
}

// archiveFolder copies an extract folder into the archive (.partial,
// fsync, rename), so repairs never depend on the gateway keeping it.
func (in *ingest) archiveFolder(f *folder, archDir string) (map[string]string, error) {
	sums := map[string]string{}
	for _, name := range f.files {
		if err := landing.ValidName(name); err != nil {
			return nil, fmt.Errorf("file %q in %s: %w", name, f.name, err)
		}
		src, err := os.Open(filepath.Join(in.root, f.name, name))
		if err != nil {
			return nil, err
		}
		pend, err := in.archive.Create(path.Join(archDir, name))
		if err != nil {
			src.Close()
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(io.MultiWriter(pend, h), src)
		src.Close()
		if err == nil {
			err = pend.Commit()
		}
		if err != nil {
			pend.Abort()
			return nil, err
		}
		sums[name] = hex.EncodeToString(h.Sum(nil))
	}
	return sums, nil
}

// staged is one validated table waiting for the whole extract.
type staged struct {
	pending *landing.Pending
	file    state.File
	stats   landing.Stats
}

// fetch archives, unzips, decodes, validates and lands one extract. Tables
// land only when the manifest, the zip and every declared table passed.
// Fetch implements extract.Worker.
func (in *ingest) Fetch(ctx context.Context, pp *extract.Period, b *extract.Batch) error {
	f := b.Detail.(*folder)
	day := extract.Key(pp.Key)
	archDir := extract.ArchiveDir(in.req.Addr, in.src, f.name)
	batchDir := extract.LandingDir(in.req.Addr, in.src, day, f.name)
	sums, err := in.archiveFolder(f, archDir)
	if err != nil {
		return fmt.Errorf("archiving %s: %w", f.name, err)
	}
	failpoint.Hit("after-download")
	d := &state.Delivery{Extract: in.req.Addr, Source: in.src, Day: day, BatchID: f.name, Kind: b.Kind, Cutoff: f.time, Path: batchDir}
	var stagedFiles []*staged
	abort := func() {
		for _, s := range stagedFiles {
			s.pending.Abort()
		}
	}
	quarantine := func(reason string) error {
		abort()
		in.diags = append(in.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "extract " + f.name + " quarantined: " + firstLine(reason),
			Detail: "Nothing of this extract was landed; a copy stays in the archive as evidence: " + path.Join(in.archive.Path(), archDir) + ". " + reason})
		d.Status, d.Reason = state.DeliveryQuarantined, firstLine(reason)
		if err := in.env.Store.Tx(ctx, func(tx state.Tx) error { return tx.PutDelivery(d) }); err != nil {
			return err
		}
		return extract.ErrQuarantined
	}
	archAbs := filepath.Join(in.archive.Path(), filepath.FromSlash(archDir))
	m, err := readManifest(archAbs)
	if err != nil {
		return quarantine("SRManifest.csv: " + err.Error())
	}
	d.SeqTo = m.Cutoff().Format(srfile.DateLayout)
	if from := m.From(); !from.IsZero() {
		d.SeqFrom = from.Format(srfile.DateLayout)
	}
	entries, closer, err := srfile.OpenExtract(archAbs, f.files)
	if err != nil {
		return quarantine("SRExtract: " + err.Error())
	}
	defer closer.Close()
	byName := map[string]srfile.Entry{}
	for _, e := range entries {
		byName[strings.TrimSuffix(e.Name, ".csv")] = e
	}
	var missing []string
	for _, t := range m.Tables() {
		if _, ok := byName[t]; !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return quarantine(fmt.Sprintf("SRManifest.csv file(s) %v missing from SRExtract", missing))
	}
	if m.IsFull() != (b.Kind == "full") {
		d.Kind = map[bool]string{true: "full", false: "delta"}[m.IsFull()]
	}
	declared := map[string]srfile.ReportTable{}
	for _, t := range tables(in.req.Dataset) {
		declared[t.Name] = t
	}
	var undeclared []state.File
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e := byName[n]
		t, ok := declared[n]
		if !ok && n != "SROrganisation" {
			undeclared = append(undeclared, state.File{Table: n, RemoteName: e.Name, Status: statusUndeclared, Reason: "not declared in the dataset"})
			continue
		}
		s, err := in.stage(e, n, t, batchDir)
		if err != nil && !dataFault(err) {
			abort()
			return fmt.Errorf("extract %s not landed (retried later): %w", f.name, err)
		}
		if err != nil {
			return quarantine(err.Error())
		}
		stagedFiles = append(stagedFiles, s)
	}
	for _, extra := range []string{srfile.MappingFile, srfile.MappingGroupFile} {
		s, err := in.stageFile(archAbs, extra, batchDir)
		if err != nil && !dataFault(err) {
			abort()
			return fmt.Errorf("extract %s not landed (retried later): %w", f.name, err)
		}
		if err != nil {
			return quarantine(err.Error())
		}
		stagedFiles = append(stagedFiles, s)
	}
	failpoint.Hit("after-decrypt")
	in.discrepancies(ctx, f.name, m, stagedFiles)
	var files []state.File
	var fresh []*state.File
	for _, s := range stagedFiles {
		s.file.ArchivePath = path.Join(archDir, srfile.ExtractZip)
		s.file.ArchiveSHA256 = sums[srfile.ExtractZip]
		files = append(files, s.file)
		fresh = append(fresh, &s.file)
	}
	for i := range undeclared {
		fresh = append(fresh, &undeclared[i])
	}
	l := extract.Landing{Delivery: d, Files: files, Fresh: fresh, Resume: b.Resume,
		Manifest: &landing.Manifest{Supplier: "tpp", Cutoff: m.Cutoff()},
		Observe: func() ([]state.Observation, error) {
			obs := in.observations(stagedFiles)
			in.newPractices(ctx, d, obs)
			return obs, nil
		},
		Extra: func(tx state.Tx) error { return in.reportProven(tx, files) },
	}
	for _, s := range stagedFiles {
		l.Staged = append(l.Staged, s.pending)
	}
	return extract.Commit(ctx, in.env, in.land, l)
}

// dataFault reports whether a table's error is about the delivery itself
// (quarantine it) rather than about this machine (retry it): CSV format
// problems and a zip entry that is corrupt or does not match its checksum.
func dataFault(err error) bool {
	var fe *landing.FormatError
	return errors.As(err, &fe) || errors.Is(err, zip.ErrChecksum) || errors.Is(err, zip.ErrFormat) ||
		errors.Is(err, zip.ErrAlgorithm) || isCorrupt(err)
}

// isCorrupt catches compress/flate's corruption errors, which carry an offset.
func isCorrupt(err error) bool {
	var ce flate.CorruptInputError
	return errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF)
}

// discrepancies reports a manifest that calls a table a bulk while its
// content says delta: it carries removed rows (a bulk never does), or far
// fewer rows than the last full extract of that table (SR's "Possible
// discrepancy between SRManifest and file content", seen when SRPatient
// was flagged bulk but held no practice data). The manifest is trusted, as
// SR trusts it; the warning is for a human.
func (in *ingest) discrepancies(ctx context.Context, folder string, m *srfile.Manifest, files []*staged) {
	lastFull := in.lastFullRows(ctx)
	for _, s := range files {
		row, ok := m.Row(s.file.Table)
		if !ok || row.IsDelta {
			continue
		}
		why := ""
		switch prev := lastFull[s.file.Table]; {
		case s.stats.Deleted > 0:
			why = fmt.Sprintf("it carries %d rows with RemovedData=1", s.stats.Deleted)
		case prev > 0 && s.stats.Rows*2 < prev:
			why = fmt.Sprintf("it has %d rows where the last full extract had %d", s.stats.Rows, prev)
		default:
			continue
		}
		in.diags = append(in.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning,
			Summary: "possible discrepancy between SRManifest (bulk = true) and file content (bulk = false) for " + s.file.Table,
			Detail:  fmt.Sprintf("Extract %s: the manifest marks %s IsDelta=N, but %s. Landed as the manifest says.", folder, s.file.Table, why)})
	}
}

// lastFullRows is each table's row count in the latest full extract landed.
func (in *ingest) lastFullRows(ctx context.Context) map[string]int64 {
	out := map[string]int64{}
	ds, err := in.env.Store.Deliveries(ctx, in.req.Addr)
	if err != nil {
		return out
	}
	var last *state.Delivery
	for i := range ds {
		if ds[i].Source == in.src && ds[i].Kind == "full" && ds[i].Status == state.DeliveryLanded {
			last = &ds[i]
		}
	}
	if last == nil {
		return out
	}
	files, _ := in.env.Store.Files(ctx, last.ID)
	for _, f := range files {
		out[f.Table] = f.Rows
	}
	return out
}

// spec is how a table must look: the declared fields in order (with or
// without RemovedData, as format versions differ), or the catalogue's
// known versions when the dataset names no fields.
func (in *ingest) spec(table string, t srfile.ReportTable) (landing.CSVSpec, error) {
	delim, err := srfile.ReportConfig{Delimiter: providers.String(in.req.Source, "delimiter")}.DelimiterByte()
	if err != nil {
		return landing.CSVSpec{}, err
	}
	quote, err := srfile.ReportConfig{TextQualifier: providers.String(in.req.Source, "text_qualifier")}.QuoteByte()
	if err != nil {
		return landing.CSVSpec{}, err
	}
	spec := landing.CSVSpec{Delimiter: delim, Quote: quote, Encoding: landing.Windows1252,
		DeletedColumn: srfile.RemovedData, DeletedValue: "1", Required: t.Fields}
	cat, known := srfile.Lookup(table)
	if known {
		spec.NHSColumn, spec.OrgColumn = cat.NHSColumn, cat.OrgColumn
	}
	switch {
	case len(t.Fields) > 0:
		base := make([]string, 0, len(t.Fields))
		for _, f := range t.Fields {
			if f != srfile.RemovedData {
				base = append(base, f)
			}
		}
		spec.Versions = landing.Versions{
			{Name: "declared+RemovedData", Columns: append(append([]string{}, base...), srfile.RemovedData)},
			{Name: "declared", Columns: base},
		}
	case known:
		spec.Versions = cat.Versions
	}
	return spec, nil
}

// stage validates one zip entry into a pending landed file.
func (in *ingest) stage(e srfile.Entry, table string, t srfile.ReportTable, batchDir string) (*staged, error) {
	spec, err := in.spec(table, t)
	if err != nil {
		return nil, err
	}
	rc, err := e.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Name, err)
	}
	defer rc.Close()
	landRel := path.Join(batchDir, e.Name)
	pend, err := in.land.Create(landRel)
	if err != nil {
		return nil, err
	}
	stats, err := landing.Check(rc, pend, spec)
	if err != nil {
		pend.Abort()
		return nil, fmt.Errorf("%s: %w%s", e.Name, err, delimiterHint(e, spec))
	}
	return &staged{pending: pend, stats: stats, file: state.File{Table: table, RemoteName: e.Name, LandedPath: landRel,
		LandedSHA256: stats.SHA256, LandedSize: stats.Bytes, Rows: stats.Rows, DeletedRows: stats.Deleted, BadNHS: stats.BadNHS,
		Status: state.FileLanded}}, nil
}

// delimiterHint names the likely cause of a header that does not parse
// or match: the file uses another delimiter than the report declares.
func delimiterHint(e srfile.Entry, spec landing.CSVSpec) string {
	rc, err := e.Open()
	if err != nil {
		return ""
	}
	defer rc.Close()
	buf := make([]byte, 4096)
	n, _ := io.ReadFull(rc, buf)
	line := string(buf[:n])
	if i := strings.IndexAny(line, "\r\n"); i >= 0 {
		line = line[:i]
	}
	best, most := "", strings.Count(line, string(spec.Delimiter))
	for _, c := range []string{",", "|", "\t", ";"} {
		if k := strings.Count(line, c); c[0] != spec.Delimiter && k > most {
			best, most = c, k
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (the header looks %q-delimited; the report declares %q)", best, string(spec.Delimiter))
}

// stageFile lands a plain Windows-1252 CSV of the folder (SRMapping).
func (in *ingest) stageFile(dir, name, batchDir string) (*staged, error) {
	fh, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	pend, err := in.land.Create(path.Join(batchDir, name))
	if err != nil {
		return nil, err
	}
	stats, err := landing.Check(fh, pend, landing.CSVSpec{Delimiter: ',', Quote: '"', Encoding: landing.Windows1252})
	if err != nil {
		pend.Abort()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &staged{pending: pend, stats: stats, file: state.File{Table: strings.TrimSuffix(name, ".csv"), RemoteName: name,
		LandedPath: path.Join(batchDir, name), LandedSHA256: stats.SHA256, LandedSize: stats.Bytes, Rows: stats.Rows, Status: state.FileLanded}}, nil
}

// observations reads SROrganisation as landed and counts rows per
// organisation from IDOrganisationVisibleTo.
func (in *ingest) observations(files []*staged) []state.Observation {
	rows := map[string]int64{}
	names := map[string]string{}
	for _, s := range files {
		for ods, n := range s.stats.PerOrg {
			rows[ods] += n
		}
		if s.file.Table == "SROrganisation" {
			delim, _ := srfile.ReportConfig{Delimiter: providers.String(in.req.Source, "delimiter")}.DelimiterByte()
			quote, _ := srfile.ReportConfig{TextQualifier: providers.String(in.req.Source, "text_qualifier")}.QuoteByte()
			if fh, err := in.land.Open(s.file.LandedPath); err == nil {
				names, _ = srfile.ParseOrganisations(fh, delim, quote)
				fh.Close()
			}
		}
	}
	var out []state.Observation
	for ods, name := range names {
		// SystmOne identifies organisations by ODS code; it is their key.
		out = append(out, state.Observation{Source: in.src, OrgGUID: ods, ODS: ods, Name: name, IsActivated: true, Rows: rows[ods]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ODS < out[j].ODS })
	return out
}

// newPractices recognises a bulk that brings practices with data never
// seen before: a new practice joining the feed (TPP sends its bulk as a
// separate extract, beside the regular deltas).
func (in *ingest) newPractices(ctx context.Context, d *state.Delivery, obs []state.Observation) {
	prev, err := in.env.Store.Observations(ctx, in.src)
	if err != nil || len(prev) == 0 {
		return
	}
	seen := map[string]bool{}
	for _, o := range prev {
		if o.Rows > 0 {
			seen[o.ODS] = true
		}
	}
	var fresh []string
	for _, o := range obs {
		if o.Rows > 0 && !seen[o.ODS] {
			fresh = append(fresh, o.ODS)
		}
	}
	if len(fresh) > 0 {
		in.diags = append(in.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning,
			Summary: "extract " + d.BatchID + " brings data for new practice(s) " + strings.Join(fresh, ", "),
			Detail:  "A new practice's first extract is its bulk; later deltas continue the chain for it."})
	}
}

// reportProven marks the report sheet done when a landed delivery carries
// every declared table: the supplier configured what was asked.
func (in *ingest) reportProven(tx state.Tx, files []state.File) error {
	have := map[string]bool{}
	for _, f := range files {
		have[f.Table] = true
	}
	for _, t := range tables(in.req.Dataset) {
		if !have[t.Name] {
			return nil
		}
	}
	hs, err := in.env.Store.Handoffs(context.Background(), in.src)
	if err != nil {
		return err
	}
	for _, h := range hs {
		if h.Kind == handoff.ReportConfig && h.Status == state.HandoffAwaiting {
			h.Status, h.Updated = state.HandoffDone, in.env.Now().UTC()
			if err := tx.PutHandoff(h); err != nil {
				return err
			}
		}
	}
	r, err := in.env.Store.Resource(context.Background(), in.src)
	if err != nil || r == nil || r.Status != state.StatusAwaitingSupplier {
		return err
	}
	r.Status = state.StatusReady
	return tx.PutResource(*r)
}

// repair re-lands missing or changed tables from the archived extract.
// Repair implements extract.Worker.
func (in *ingest) Repair(ctx context.Context, b *extract.Batch) (err error) {
	d := b.Delivery
	archDir := extract.ArchiveDir(in.req.Addr, in.src, d.BatchID)
	archAbs := filepath.Join(in.archive.Path(), filepath.FromSlash(archDir))
	names, err := os.ReadDir(archAbs)
	if err != nil {
		return fmt.Errorf("repairing %s: the archived extract is gone: %w", d.BatchID, err)
	}
	var list []string
	for _, n := range names {
		list = append(list, n.Name())
	}
	var fixed []*state.File
	var promote []*landing.Pending
	defer func() {
		if err != nil {
			for _, p := range promote {
				p.Abort() // no .partial left behind by a failed repair
			}
		}
	}()
	for i := range b.Repair {
		f := &b.Repair[i]
		if sum, _, err := in.archive.Hash(f.ArchivePath); err != nil || sum != f.ArchiveSHA256 {
			if f.ArchivePath != "" {
				return fmt.Errorf("repairing %s: the archived %s no longer matches its recorded hash", f.LandedPath, f.ArchivePath)
			}
		}
		var s *staged
		switch f.RemoteName {
		case srfile.MappingFile, srfile.MappingGroupFile:
			s, err = in.stageFile(archAbs, f.RemoteName, path.Dir(f.LandedPath))
		default:
			entries, closer, err2 := srfile.OpenExtract(archAbs, list)
			if err2 != nil {
				return fmt.Errorf("repairing %s: %w", f.LandedPath, err2)
			}
			for _, e := range entries {
				if e.Name == f.RemoteName {
					var t srfile.ReportTable
					for _, dt := range tables(in.req.Dataset) {
						if dt.Name == f.Table {
							t = dt
						}
					}
					s, err = in.stage(e, f.Table, t, path.Dir(f.LandedPath))
				}
			}
			closer.Close()
		}
		if err != nil {
			return fmt.Errorf("repairing %s: %w", f.LandedPath, err)
		}
		if s == nil || s.stats.SHA256 != f.LandedSHA256 {
			if s != nil {
				s.pending.Abort()
			}
			return fmt.Errorf("repairing %s: the archive no longer yields the recorded content", f.LandedPath)
		}
		promote = append(promote, s.pending)
		f.Reason = ""
		fixed = append(fixed, f)
	}
	all, err := in.env.Store.Files(ctx, d.ID)
	if err != nil {
		return err
	}
	var landed []state.File
	for _, f := range all {
		if f.Status == state.FileLanded {
			landed = append(landed, f)
		}
	}
	obs, err := in.env.Store.Observations(ctx, in.src)
	if err != nil {
		return err
	}
	var mine []state.Observation
	for _, o := range obs {
		if o.DeliveryID == d.ID {
			mine = append(mine, o)
		}
	}
	to, _ := time.Parse(srfile.DateLayout, d.SeqTo)
	return extract.Commit(ctx, in.env, in.land, extract.Landing{Delivery: d, Files: landed, Fresh: fixed, Staged: promote,
		Manifest: &landing.Manifest{Supplier: "tpp", Cutoff: to},
		Observe:  func() ([]state.Observation, error) { return mine, nil },
	})
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
