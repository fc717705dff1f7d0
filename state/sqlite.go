package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNoState means there is no state at the path (or the file holds none).
// A read-only open of a missing file returns it and creates nothing: a plan
// without state treats it as empty state (see OpenMemory).
var ErrNoState = errors.New("no state")

// ErrReadOnly is returned by every write on a store opened ReadOnly.
var ErrReadOnly = errors.New("state is open read-only")

// Options control OpenSQLite.
type Options struct {
	// ReadOnly opens with mode=ro: nothing is written, not even a migration.
	ReadOnly bool
	// Create makes the parent directory (0700), the file (0600) and a new
	// lineage when there is no state yet.
	Create bool
	// Now is the clock for timestamps and lock expiry; time.Now when nil.
	Now func() time.Time
}

// SQLite is the Store in one SQLite file. Writes go through a single writer
// connection (SQLite allows one writer anyway); reads use a small pool of
// query-only connections, which under WAL see the last committed data and
// never wait for the writer.
type SQLite struct {
	path string
	ro   bool
	now  func() time.Time
	w    *sql.DB // nil when read-only
	r    *sql.DB

	mu    sync.Mutex
	stmts map[string]*sql.Stmt // prepared on r

	gen        atomic.Uint64
	lastSerial atomic.Int64

	// last is what Resources read, kept for one ResourceHeads in the same
	// generation: a plan asks for both, over thousands of resources.
	last struct {
		sync.Mutex
		gen uint64
		rs  []Resource
	}
}

// Generation: see Store.
func (s *SQLite) Generation() uint64 { return s.gen.Load() }

// sawSerial notes a serial read from the database.
func (s *SQLite) sawSerial(n int64) {
	if s.lastSerial.Swap(n) != n {
		s.gen.Add(1)
	}
}

var _ Store = (*SQLite)(nil)

// busyTimeoutMS bounds how long a statement waits for another connection's
// lock before failing with SQLITE_BUSY.
const busyTimeoutMS = 10000

// OpenSQLite opens the state at path. See Options for Create and ReadOnly;
// without Create a missing file gives ErrNoState. A read-write open
// migrates an older schema in one transaction; a read-only open of an older
// schema, and any open of a newer one, gives a *SchemaVersionError.
func OpenSQLite(ctx context.Context, path string, opts Options) (*SQLite, error) {
	return openSQLite(ctx, path, opts, migrations)
}

func openSQLite(ctx context.Context, path string, opts Options, migs []string) (*SQLite, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		if opts.ReadOnly || !opts.Create {
			return nil, fmt.Errorf("%w: %s does not exist", ErrNoState, path)
		}
		if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
			return nil, fmt.Errorf("create state directory: %w", err)
		}
		// An empty file is a valid empty database; creating it here fixes
		// its mode (SQLite gives -wal and -shm the same one).
		f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create state file: %w", err)
		}
		if f != nil {
			if err := f.Close(); err != nil {
				return nil, err
			}
		}
	} else if err != nil {
		return nil, err
	}

	if fsName, remote := networkFS(filepath.Dir(abs)); remote {
		return nil, fmt.Errorf("%w: %s is on a %s filesystem; SQLite's WAL and locks are not safe there (keep the state on a local disk, or use the PostgreSQL backend for shared state)", ErrNetworkFS, path, fsName)
	}
	s := &SQLite{path: path, ro: opts.ReadOnly, now: now, stmts: map[string]*sql.Stmt{}}
	if !opts.ReadOnly {
		s.w, err = sql.Open("sqlite", dsn(abs,
			"_txlock", "immediate",
			"_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS),
			"_pragma", "journal_mode(WAL)",
			"_pragma", "synchronous(FULL)",
			"_pragma", "foreign_keys(ON)",
			// Statement journals go to memory, not a temp file: with
			// them on disk a 100k-row transaction runs 40x slower.
			"_pragma", "temp_store(MEMORY)",
			// 32 MiB page cache, so a large transaction is not spilled
			// to the WAL page by page before its commit.
			"_pragma", "cache_size(-32768)",
		))
		if err != nil {
			return nil, err
		}
		s.w.SetMaxOpenConns(1)
		s.w.SetConnMaxIdleTime(0)
		lineage := func() string { return uuid.NewString() }
		if err := migrate(ctx, s.w, path, migs, opts.Create, lineage, unixNano(now())); err != nil {
			s.w.Close()
			return nil, err
		}
	}

	params := []string{
		"_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS),
		"_pragma", "foreign_keys(ON)",
	}
	if opts.ReadOnly {
		params = append(params, "mode", "ro")
	} else {
		params = append(params, "_pragma", "query_only(ON)")
	}
	s.r, err = sql.Open("sqlite", dsn(abs, params...))
	if err != nil {
		s.Close()
		return nil, err
	}
	s.r.SetMaxOpenConns(4)
	if opts.ReadOnly {
		if err := s.checkReadOnly(ctx, len(migs)); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// OpenMemory returns an empty state that lives in memory until Close, with
// lineage "" and serial 0: what a plan sees when OpenSQLite says
// ErrNoState. Nothing touches the disk; Backup still writes a file.
func OpenMemory(ctx context.Context, opts Options) (*SQLite, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	// memdb shares one database between the connections of this process
	// that name it; the random name keeps two OpenMemory calls apart.
	name := "/im1-state-" + uuid.NewString()
	s := &SQLite{path: ":memory:", now: now, stmts: map[string]*sql.Stmt{}}
	var err error
	s.w, err = sql.Open("sqlite", "file:"+name+"?"+url.Values{
		"vfs":     {"memdb"},
		"_txlock": {"immediate"},
		"_pragma": {fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS), "foreign_keys(ON)", "temp_store(MEMORY)"},
	}.Encode())
	if err != nil {
		return nil, err
	}
	// The database lives as long as a connection to it: keep the writer's.
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxIdleTime(0)
	s.w.SetConnMaxLifetime(0)
	if err := migrate(ctx, s.w, s.path, migrations, true, func() string { return "" }, unixNano(now())); err != nil {
		s.w.Close()
		return nil, err
	}
	s.r, err = sql.Open("sqlite", "file:"+name+"?"+url.Values{
		"vfs":     {"memdb"},
		"_pragma": {fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS), "query_only(ON)"},
	}.Encode())
	if err != nil {
		s.Close()
		return nil, err
	}
	s.r.SetMaxOpenConns(4)
	return s, nil
}

// dsn builds a file: URI; the path is escaped so '?', '#' and '%' in it
// are not taken for URI syntax.
func dsn(abs string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	return "file:" + (&url.URL{Path: filepath.ToSlash(abs)}).EscapedPath() + "?" + q.Encode()
}

func (s *SQLite) checkReadOnly(ctx context.Context, want int) error {
	var have int
	if err := s.r.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&have); err != nil {
		return fmt.Errorf("%s: read schema version: %w", s.path, err)
	}
	switch {
	case have == 0:
		return fmt.Errorf("%w: %s holds no im1 state", ErrNoState, s.path)
	case have != want:
		return &SchemaVersionError{Path: s.path, Have: have, Want: want}
	}
	return nil
}

// Path is the path the state was opened with.
func (s *SQLite) Path() string { return s.path }

// Close closes the state's connections.
func (s *SQLite) Close() error {
	var errs []error
	s.mu.Lock()
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	s.stmts = map[string]*sql.Stmt{}
	s.mu.Unlock()
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	return errors.Join(errs...)
}

// stmt returns q prepared on the read pool; database/sql re-prepares it on
// each pooled connection as needed.
func (s *SQLite) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stmts[q]; ok {
		return st, nil
	}
	st, err := s.r.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	s.stmts[q] = st
	return st, nil
}

func (s *SQLite) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// Times are stored as unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Meta returns lineage, serial, creation time and schema version.
func (s *SQLite) Meta(ctx context.Context) (Meta, error) {
	var m Meta
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT lineage, serial, created FROM meta WHERE id = 1`).
		Scan(&m.Lineage, &m.Serial, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("%w: %s has no meta row", ErrNoState, s.path)
	}
	if err != nil {
		return m, err
	}
	s.sawSerial(m.Serial)
	m.Created = fromNano(created)
	if err := s.r.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&m.SchemaVersion); err != nil {
		return m, err
	}
	return m, nil
}

// Serial returns the state's serial: one small query, for caches that are
// valid while the state has not moved.
func (s *SQLite) Serial(ctx context.Context) (int64, error) {
	st, err := s.stmt(ctx, `SELECT serial FROM meta WHERE id = 1`)
	if err != nil {
		return 0, err
	}
	var n int64
	err = st.QueryRowContext(ctx).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s has no meta row", ErrNoState, s.path)
	}
	if err == nil {
		s.sawSerial(n)
	}
	return n, err
}

const resourceCols = `addr, type, name, key, status, attrs, attrs_type, private, deps, updated_at`

func scanResource(sc interface{ Scan(...any) error }) (Resource, error) {
	var r Resource
	var deps string
	var updated int64
	if err := sc.Scan(&r.Addr, &r.Type, &r.Name, &r.Key, &r.Status, (*blob)(&r.Attrs), (*blob)(&r.AttrsType), (*blob)(&r.Private), &deps, &updated); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(deps), &r.Deps); err != nil {
		return r, fmt.Errorf("resource %s: deps: %w", r.Addr, err)
	}
	if len(r.Deps) == 0 {
		r.Deps = nil
	}
	r.UpdatedAt = fromNano(updated)
	return r, nil
}

// Resources returns every resource, ordered by address.
func (s *SQLite) Resources(ctx context.Context) ([]Resource, error) {
	gen := s.gen.Load()
	rows, err := s.query(ctx, `SELECT `+resourceCols+` FROM resources ORDER BY addr`)
	if err != nil {
		return nil, err
	}
	rs, err := collect(rows, scanResource)
	if err == nil {
		// The heads are copied: the caller owns rs and may change it.
		heads := make([]Resource, len(rs))
		for i, r := range rs {
			heads[i] = Resource{Addr: r.Addr, Type: r.Type, Status: r.Status, Attrs: r.Attrs}
		}
		s.last.Lock()
		s.last.gen, s.last.rs = gen, heads
		s.last.Unlock()
	}
	return rs, err
}

// lastHeads is ResourceHeads from what Resources read, if nothing was
// committed since; it lets go of that read either way.
func (s *SQLite) lastHeads(attrsOf []string) ([]Resource, bool) {
	s.last.Lock()
	rs, gen := s.last.rs, s.last.gen
	s.last.rs = nil
	s.last.Unlock()
	if rs == nil || gen != s.gen.Load() {
		return nil, false
	}
	out := make([]Resource, len(rs))
	for i, r := range rs {
		out[i] = Resource{Addr: r.Addr, Type: r.Type, Status: r.Status}
		if slices.Contains(attrsOf, r.Type) {
			out[i].Attrs = slices.Clone(r.Attrs)
		}
	}
	return out, true
}

// ResourceHeads returns every resource's address, type and status, and the
// attributes of those of the given types only: what providers need to know
// about the rest of state, without decoding thousands of values.
func (s *SQLite) ResourceHeads(ctx context.Context, attrsOf ...string) ([]Resource, error) {
	if rs, ok := s.lastHeads(attrsOf); ok {
		return rs, nil
	}
	// SQLite reads a column only when asked for it: the CASE keeps it from
	// reading thousands of attribute values only to drop them.
	q := `SELECT addr, type, status, NULL FROM resources ORDER BY addr`
	args := make([]any, len(attrsOf))
	if len(attrsOf) > 0 {
		for i, t := range attrsOf {
			args[i] = t
		}
		q = `SELECT addr, type, status, CASE WHEN type IN (?` + strings.Repeat(`, ?`, len(attrsOf)-1) + `) THEN attrs END FROM resources ORDER BY addr`
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(sc interface{ Scan(...any) error }) (Resource, error) {
		var r Resource
		err := sc.Scan(&r.Addr, &r.Type, &r.Status, (*blob)(&r.Attrs))
		return r, err
	})
}

// Resource returns the resource at addr, or nil, nil when there is none.
func (s *SQLite) Resource(ctx context.Context, addr string) (*Resource, error) {
	st, err := s.stmt(ctx, `SELECT `+resourceCols+` FROM resources WHERE addr = ?`)
	if err != nil {
		return nil, err
	}
	r, err := scanResource(st.QueryRowContext(ctx, addr))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// blob scans a BLOB column into a []byte without database/sql's copy of
// it: modernc.org/sqlite's driver makes a new slice for every BLOB value
// it returns (conn.columnBlob), so keeping that slice is safe. At national
// scale the copies were 43 MB of a plan's 304 MB of allocations, and on
// this VM every page of new memory costs a fault. TestBlobOwnsDriverSlice
// fails if a driver update starts reusing the slice.
type blob []byte

func (b *blob) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*b = nil
	case []byte:
		*b = v
	case string:
		*b = []byte(v)
	default:
		return fmt.Errorf("state: cannot scan %T into bytes", src)
	}
	return nil
}

// collect scans all rows and closes them.
func collect[T any](rows *sql.Rows, scan func(interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Audit returns the audit log, oldest first.
func (s *SQLite) Audit(ctx context.Context) ([]AuditEntry, error) {
	rows, err := s.query(ctx, `SELECT id, time, who, operation, plan_hash, outcome, detail FROM audit ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(sc interface{ Scan(...any) error }) (AuditEntry, error) {
		var e AuditEntry
		var t int64
		err := sc.Scan(&e.ID, &t, &e.Who, &e.Operation, &e.PlanHash, &e.Outcome, &e.Detail)
		e.Time = fromNano(t)
		return e, err
	})
}

const deliveryCols = `id, extract, source, day, batch_id, kind, seq_from, seq_to, cutoff, status, reason, path, manifest, created, updated`

func scanDelivery(sc interface{ Scan(...any) error }) (Delivery, error) {
	var d Delivery
	var cutoff, created, updated int64
	err := sc.Scan(&d.ID, &d.Extract, &d.Source, &d.Day, &d.BatchID, &d.Kind, &d.SeqFrom, &d.SeqTo,
		&cutoff, &d.Status, &d.Reason, &d.Path, &d.Manifest, &created, &updated)
	d.Cutoff, d.Created, d.Updated = fromNano(cutoff), fromNano(created), fromNano(updated)
	return d, err
}

// EachDelivery streams the deliveries of extract (all extracts when "") in
// (day, batch_id) order, without holding them all in memory. fn may call
// other read methods; an error from fn stops the walk and is returned.
func (s *SQLite) EachDelivery(ctx context.Context, extract string, fn func(Delivery) error) error {
	var rows *sql.Rows
	var err error
	if extract == "" {
		rows, err = s.query(ctx, `SELECT `+deliveryCols+` FROM deliveries ORDER BY extract, day, batch_id, id`)
	} else {
		rows, err = s.query(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE extract = ? ORDER BY day, batch_id, id`, extract)
	}
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Deliveries returns the deliveries of extract (all when "") in (day,
// batch_id) order.
func (s *SQLite) Deliveries(ctx context.Context, extract string) ([]Delivery, error) {
	var out []Delivery
	err := s.EachDelivery(ctx, extract, func(d Delivery) error {
		out = append(out, d)
		return nil
	})
	return out, err
}

// Delivery returns one delivery by ID, or nil, nil when there is none.
func (s *SQLite) Delivery(ctx context.Context, id int64) (*Delivery, error) {
	st, err := s.stmt(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE id = ?`)
	if err != nil {
		return nil, err
	}
	d, err := scanDelivery(st.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &d, nil
}

const fileCols = `id, delivery_id, tbl, remote_name, remote_size, remote_mtime, archive_path, archive_sha256,
	archive_size, landed_path, landed_sha256, landed_size, rows, deleted_rows, bad_nhs, key_id, status, reason`

// Files returns the files of a delivery ordered by ID.
func (s *SQLite) Files(ctx context.Context, deliveryID int64) ([]File, error) {
	rows, err := s.query(ctx, `SELECT `+fileCols+` FROM files WHERE delivery_id = ? ORDER BY id`, deliveryID)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(sc interface{ Scan(...any) error }) (File, error) {
		var f File
		var mtime int64
		err := sc.Scan(&f.ID, &f.DeliveryID, &f.Table, &f.RemoteName, &f.RemoteSize, &mtime, &f.ArchivePath,
			&f.ArchiveSHA256, &f.ArchiveSize, &f.LandedPath, &f.LandedSHA256, &f.LandedSize, &f.Rows,
			&f.DeletedRows, &f.BadNHS, &f.KeyID, &f.Status, &f.Reason)
		f.RemoteMTime = fromNano(mtime)
		return f, err
	})
}

// Observations returns the observations recorded for source (all when ""),
// ordered by delivery and organisation GUID.
func (s *SQLite) Observations(ctx context.Context, source string) ([]Observation, error) {
	const cols = `SELECT delivery_id, source, org_guid, ods, name, is_activated, disabled, deleted, rows FROM observations `
	var rows *sql.Rows
	var err error
	if source == "" {
		rows, err = s.query(ctx, cols+`ORDER BY delivery_id, org_guid`)
	} else {
		rows, err = s.query(ctx, cols+`WHERE source = ? ORDER BY delivery_id, org_guid`, source)
	}
	if err != nil {
		return nil, err
	}
	return collect(rows, func(sc interface{ Scan(...any) error }) (Observation, error) {
		var o Observation
		err := sc.Scan(&o.DeliveryID, &o.Source, &o.OrgGUID, &o.ODS, &o.Name, &o.IsActivated, &o.Disabled, &o.Deleted, &o.Rows)
		return o, err
	})
}

// Listings returns the remote files last seen at source (all when ""),
// ordered by name.
func (s *SQLite) Listings(ctx context.Context, source string) ([]Listing, error) {
	const cols = `SELECT source, name, size, mtime, first_seen, last_seen FROM listings `
	var rows *sql.Rows
	var err error
	if source == "" {
		rows, err = s.query(ctx, cols+`ORDER BY source, name`)
	} else {
		rows, err = s.query(ctx, cols+`WHERE source = ? ORDER BY name`, source)
	}
	if err != nil {
		return nil, err
	}
	return collect(rows, func(sc interface{ Scan(...any) error }) (Listing, error) {
		var l Listing
		var mtime, first, last int64
		err := sc.Scan(&l.Source, &l.Name, &l.Size, &mtime, &first, &last)
		l.MTime, l.FirstSeen, l.LastSeen = fromNano(mtime), fromNano(first), fromNano(last)
		return l, err
	})
}

// Handoffs returns the handoffs of source (all when ""), ordered by ID.
func (s *SQLite) Handoffs(ctx context.Context, source string) ([]Handoff, error) {
	const cols = `SELECT id, source, kind, path, status, created, updated FROM handoffs `
	var rows *sql.Rows
	var err error
	if source == "" {
		rows, err = s.query(ctx, cols+`ORDER BY source, id`)
	} else {
		rows, err = s.query(ctx, cols+`WHERE source = ? ORDER BY id`, source)
	}
	if err != nil {
		return nil, err
	}
	return collect(rows, func(sc interface{ Scan(...any) error }) (Handoff, error) {
		var h Handoff
		var created, updated int64
		err := sc.Scan(&h.ID, &h.Source, &h.Kind, &h.Path, &h.Status, &created, &updated)
		h.Created, h.Updated = fromNano(created), fromNano(updated)
		return h, err
	})
}

// Backup writes a consistent copy of the state to path with VACUUM INTO.
// path must not exist; the copy is created 0600 (it holds protected private
// keys) and synced before Backup returns.
func (s *SQLite) Backup(ctx context.Context, path string) (err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("state backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	db := s.w
	if db == nil {
		db = s.r
	}
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("state backup to %s: %w", path, err)
	}
	if err := syncFile(path); err != nil {
		return fmt.Errorf("state backup: %w", err)
	}
	return syncFile(filepath.Dir(path))
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// IntegrityCheck runs PRAGMA integrity_check; "ok" means no problem.
func (s *SQLite) IntegrityCheck(ctx context.Context) (string, error) {
	rows, err := s.r.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return "", err
	}
	lines, err := collect(rows, func(sc interface{ Scan(...any) error }) (string, error) {
		var l string
		return l, sc.Scan(&l)
	})
	return strings.Join(lines, "\n"), err
}

// Tx runs fn in one write transaction (BEGIN IMMEDIATE, so it never fails
// half-way for want of the write lock). The serial is bumped once on commit
// if fn changed any row other than audit entries: the audit log records
// what happened to the state but is not part of it, so an audit entry alone
// does not make a saved plan stale. An error or panic in fn rolls back.
// fn may read through s (it sees the last commit, not its own writes) but
// must not call Tx, Lock or Unlock: there is one writer connection.
func (s *SQLite) Tx(ctx context.Context, fn func(Tx) error) (err error) {
	if s.ro {
		return ErrReadOnly
	}
	sqlTx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: begin: %w", err)
	}
	t := &sqliteTx{ctx: ctx, tx: sqlTx, now: s.now, stmts: map[string]*sql.Stmt{}}
	committed := false
	defer func() {
		for _, st := range t.stmts {
			st.Close()
		}
		if !committed {
			sqlTx.Rollback()
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	if err := refreshDigests(ctx, sqlTx); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if t.wrote {
		if _, err := sqlTx.ExecContext(ctx, `UPDATE meta SET serial = serial + 1 WHERE id = 1`); err != nil {
			return fmt.Errorf("state: bump serial: %w", err)
		}
	}
	err = sqlTx.Commit()
	s.gen.Add(1) // even a failed commit may have changed what is stored
	s.last.Lock()
	s.last.rs = nil // stale now: let it go
	s.last.Unlock()
	if err != nil {
		return fmt.Errorf("state: commit: %w", err)
	}
	committed = true
	return nil
}

// sqliteTx is the Tx of one SQL transaction; statements are prepared once
// per transaction, so a loop of thousands of PutFile calls parses SQL once.
type sqliteTx struct {
	ctx   context.Context
	tx    *sql.Tx
	now   func() time.Time
	stmts map[string]*sql.Stmt
	wrote bool
}

func (t *sqliteTx) prep(q string) (*sql.Stmt, error) {
	if st, ok := t.stmts[q]; ok {
		return st, nil
	}
	st, err := t.tx.PrepareContext(t.ctx, q)
	if err != nil {
		return nil, err
	}
	t.stmts[q] = st
	return st, nil
}

// exec runs q and notes whether it changed anything.
func (t *sqliteTx) exec(q string, args ...any) (int64, error) {
	st, err := t.prep(q)
	if err != nil {
		return 0, err
	}
	res, err := st.ExecContext(t.ctx, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if n > 0 {
		t.wrote = true
	}
	return n, err
}

// insert runs an INSERT and returns the new row's ID.
func (t *sqliteTx) insert(q string, args ...any) (int64, error) {
	st, err := t.prep(q)
	if err != nil {
		return 0, err
	}
	res, err := st.ExecContext(t.ctx, args...)
	if err != nil {
		return 0, err
	}
	t.wrote = true
	return res.LastInsertId()
}

// queryRow runs a statement with RETURNING; it counts as a write.
func (t *sqliteTx) queryRow(q string, args []any, dest ...any) error {
	st, err := t.prep(q)
	if err != nil {
		return err
	}
	if err := st.QueryRowContext(t.ctx, args...).Scan(dest...); err != nil {
		return err
	}
	t.wrote = true
	return nil
}

func validStatus(s string) bool {
	return s == StatusReady || s == StatusTainted || s == StatusAwaitingSupplier
}

// PutResource inserts or replaces the resource at r.Addr; UpdatedAt is set
// to now.
func (t *sqliteTx) PutResource(r Resource) error {
	if r.Addr == "" || r.Type == "" || r.Name == "" {
		return fmt.Errorf("put resource %q: address, type and name are required", r.Addr)
	}
	if !validStatus(r.Status) {
		return fmt.Errorf("put resource %s: unknown status %q", r.Addr, r.Status)
	}
	deps := r.Deps
	if deps == nil {
		deps = []string{}
	}
	dj, err := json.Marshal(deps)
	if err != nil {
		return err
	}
	_, err = t.exec(`INSERT INTO resources (`+resourceCols+`) VALUES (?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (addr) DO UPDATE SET type = excluded.type, name = excluded.name, key = excluded.key,
			status = excluded.status, attrs = excluded.attrs, attrs_type = excluded.attrs_type,
			private = excluded.private, deps = excluded.deps, updated_at = excluded.updated_at`,
		r.Addr, r.Type, r.Name, r.Key, r.Status, r.Attrs, r.AttrsType, r.Private, string(dj), unixNano(t.now()))
	if err != nil {
		return fmt.Errorf("put resource %s: %w", r.Addr, err)
	}
	return nil
}

// DeleteResource removes the resource row at addr (nothing when absent).
// Deliveries, listings and handoffs recorded under the address stay: they
// are the record of what was landed.
func (t *sqliteTx) DeleteResource(addr string) error {
	if _, err := t.exec(`DELETE FROM resources WHERE addr = ?`, addr); err != nil {
		return fmt.Errorf("delete resource %s: %w", addr, err)
	}
	return nil
}

// MoveResource renames a resource (as `state mv` does): the row gets the new
// address, name and key, other resources' dependencies on it follow, and so
// does everything recorded under the address (deliveries, observations,
// listings, handoffs). The type cannot change, and to must be free.
func (t *sqliteTx) MoveResource(from, to string) error {
	fail := func(err error) error { return fmt.Errorf("move %s to %s: %w", from, to, err) }
	ft, _, _, err := ParseAddr(from)
	if err != nil {
		return fail(err)
	}
	tt, tn, tk, err := ParseAddr(to)
	if err != nil {
		return fail(err)
	}
	if ft != tt {
		return fail(fmt.Errorf("cannot change the resource type (%s to %s)", ft, tt))
	}
	var n int
	st, err := t.prep(`SELECT count(*) FROM resources WHERE addr = ?`)
	if err != nil {
		return fail(err)
	}
	if err := st.QueryRowContext(t.ctx, to).Scan(&n); err != nil {
		return fail(err)
	}
	if n > 0 {
		return fail(fmt.Errorf("%s already exists", to))
	}
	moved, err := t.exec(`UPDATE resources SET addr = ?, name = ?, key = ?, updated_at = ? WHERE addr = ?`,
		to, tn, tk, unixNano(t.now()), from)
	if err != nil {
		return fail(err)
	}
	if moved == 0 {
		return fail(fmt.Errorf("no resource %s in state", from))
	}
	if err := t.moveDeps(from, to); err != nil {
		return fail(err)
	}
	for _, q := range []string{
		`UPDATE deliveries SET extract = ? WHERE extract = ?`,
		`UPDATE deliveries SET source = ? WHERE source = ?`,
		`UPDATE observations SET source = ? WHERE source = ?`,
		`UPDATE listings SET source = ? WHERE source = ?`,
		`UPDATE handoffs SET source = ? WHERE source = ?`,
	} {
		if _, err := t.exec(q, to, from); err != nil {
			return fail(err)
		}
	}
	return nil
}

func (t *sqliteTx) moveDeps(from, to string) error {
	st, err := t.prep(`SELECT addr, deps FROM resources
		WHERE EXISTS (SELECT 1 FROM json_each(resources.deps) WHERE value = ?)`)
	if err != nil {
		return err
	}
	rows, err := st.QueryContext(t.ctx, from)
	if err != nil {
		return err
	}
	type dep struct{ addr, deps string }
	var found []dep
	for rows.Next() {
		var d dep
		if err := rows.Scan(&d.addr, &d.deps); err != nil {
			rows.Close()
			return err
		}
		found = append(found, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, d := range found {
		var deps []string
		if err := json.Unmarshal([]byte(d.deps), &deps); err != nil {
			return fmt.Errorf("resource %s: deps: %w", d.addr, err)
		}
		for i := range deps {
			if deps[i] == from {
				deps[i] = to
			}
		}
		dj, err := json.Marshal(deps)
		if err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE resources SET deps = ? WHERE addr = ?`, string(dj), d.addr); err != nil {
			return err
		}
	}
	return nil
}

// ParseAddr splits a resource instance address type.name or
// type.name[key] (key a quoted string or a number) into its parts.
func ParseAddr(addr string) (typ, name, key string, err error) {
	base := addr
	if i := strings.IndexByte(addr, '['); i >= 0 {
		base = addr[:i]
		k := addr[i:]
		if len(k) < 3 || k[len(k)-1] != ']' {
			return "", "", "", fmt.Errorf("invalid address %q", addr)
		}
		inner := k[1 : len(k)-1]
		if strings.HasPrefix(inner, `"`) {
			key, err = strconv.Unquote(inner)
			if err != nil {
				return "", "", "", fmt.Errorf("invalid address %q: key: %w", addr, err)
			}
		} else if _, err := strconv.ParseInt(inner, 10, 64); err == nil {
			key = inner
		} else {
			return "", "", "", fmt.Errorf("invalid address %q: key must be a quoted string or an integer", addr)
		}
	}
	typ, name, ok := strings.Cut(base, ".")
	if !ok || typ == "" || name == "" || strings.ContainsAny(name, ".[]\"") {
		return "", "", "", fmt.Errorf("invalid address %q: want type.name or type.name[key]", addr)
	}
	return typ, name, key, nil
}

// AppendAudit appends an entry (Time defaults to now) and returns its ID.
// It does not bump the serial on its own; see Tx.
func (t *sqliteTx) AppendAudit(e AuditEntry) (int64, error) {
	if e.Time.IsZero() {
		e.Time = t.now()
	}
	st, err := t.prep(`INSERT INTO audit (time, who, operation, plan_hash, outcome, detail)
		VALUES (?,?,?,?,?,?) RETURNING id`)
	if err != nil {
		return 0, err
	}
	var id int64
	if err := st.QueryRowContext(t.ctx, unixNano(e.Time), e.Who, e.Operation, e.PlanHash, e.Outcome, e.Detail).Scan(&id); err != nil {
		return 0, fmt.Errorf("append audit: %w", err)
	}
	return id, nil
}

// PutDelivery inserts d when d.ID == 0 (and sets d.ID), else inserts or
// replaces the delivery with that ID. Created is set to now when zero and
// kept from the stored row on update; Updated is set to now. Both are
// written back to d.
func (t *sqliteTx) PutDelivery(d *Delivery) error {
	if d.Extract == "" || d.Day == "" {
		return fmt.Errorf("put delivery %d: extract and day are required", d.ID)
	}
	now := t.now()
	if d.Created.IsZero() {
		d.Created = now
	}
	d.Updated = now
	args := []any{d.Extract, d.Source, d.Day, d.BatchID, d.Kind, d.SeqFrom, d.SeqTo, unixNano(d.Cutoff),
		d.Status, d.Reason, d.Path, d.Manifest, unixNano(d.Created), unixNano(d.Updated)}
	var created int64
	var err error
	if d.ID == 0 {
		// Exec and LastInsertId, not RETURNING: twice as fast in bulk.
		d.ID, err = t.insert(`INSERT INTO deliveries (extract, source, day, batch_id, kind, seq_from, seq_to, cutoff,
			status, reason, path, manifest, created, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, args...)
		created = unixNano(d.Created)
	} else {
		err = t.queryRow(`INSERT INTO deliveries (extract, source, day, batch_id, kind, seq_from, seq_to, cutoff,
			status, reason, path, manifest, created, updated, id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT (id) DO UPDATE SET extract = excluded.extract, source = excluded.source,
				day = excluded.day, batch_id = excluded.batch_id, kind = excluded.kind,
				seq_from = excluded.seq_from, seq_to = excluded.seq_to, cutoff = excluded.cutoff,
				status = excluded.status, reason = excluded.reason, path = excluded.path,
				manifest = excluded.manifest, updated = excluded.updated
			RETURNING id, created`, append(args, d.ID), &d.ID, &created)
	}
	if err != nil {
		return fmt.Errorf("put delivery %s %s: %w", d.Extract, d.BatchID, err)
	}
	d.Created = fromNano(created)
	return nil
}

// PutFile inserts f when f.ID == 0 (and sets f.ID), else inserts or
// replaces the file with that ID. The delivery must exist.
func (t *sqliteTx) PutFile(f *File) error {
	args := []any{f.DeliveryID, f.Table, f.RemoteName, f.RemoteSize, unixNano(f.RemoteMTime), f.ArchivePath,
		f.ArchiveSHA256, f.ArchiveSize, f.LandedPath, f.LandedSHA256, f.LandedSize, f.Rows, f.DeletedRows,
		f.BadNHS, f.KeyID, f.Status, f.Reason}
	const cols = `delivery_id, tbl, remote_name, remote_size, remote_mtime, archive_path, archive_sha256,
		archive_size, landed_path, landed_sha256, landed_size, rows, deleted_rows, bad_nhs, key_id, status, reason`
	var err error
	if f.ID == 0 {
		f.ID, err = t.insert(`INSERT INTO files (`+cols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, args...)
	} else {
		err = t.queryRow(`INSERT INTO files (`+cols+`, id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT (id) DO UPDATE SET delivery_id = excluded.delivery_id, tbl = excluded.tbl,
				remote_name = excluded.remote_name, remote_size = excluded.remote_size,
				remote_mtime = excluded.remote_mtime, archive_path = excluded.archive_path,
				archive_sha256 = excluded.archive_sha256, archive_size = excluded.archive_size,
				landed_path = excluded.landed_path, landed_sha256 = excluded.landed_sha256,
				landed_size = excluded.landed_size, rows = excluded.rows, deleted_rows = excluded.deleted_rows,
				bad_nhs = excluded.bad_nhs, key_id = excluded.key_id, status = excluded.status,
				reason = excluded.reason
			RETURNING id`, append(args, f.ID), &f.ID)
	}
	if err != nil {
		return fmt.Errorf("put file %s of delivery %d: %w", f.RemoteName, f.DeliveryID, err)
	}
	return nil
}

// PutObservations replaces the observations of a delivery with obs (their
// DeliveryID is taken from the argument), so re-landing a delivery is
// idempotent.
func (t *sqliteTx) PutObservations(deliveryID int64, obs []Observation) error {
	if _, err := t.exec(`DELETE FROM observations WHERE delivery_id = ?`, deliveryID); err != nil {
		return fmt.Errorf("put observations of delivery %d: %w", deliveryID, err)
	}
	for _, o := range obs {
		if _, err := t.exec(`INSERT INTO observations (delivery_id, source, org_guid, ods, name, is_activated,
			disabled, deleted, rows) VALUES (?,?,?,?,?,?,?,?,?)`,
			deliveryID, o.Source, o.OrgGUID, o.ODS, o.Name, o.IsActivated, o.Disabled, o.Deleted, o.Rows); err != nil {
			return fmt.Errorf("put observation %s of delivery %d: %w", o.OrgGUID, deliveryID, err)
		}
	}
	return nil
}

// PutListing inserts or replaces the listing of (Source, Name); zero
// FirstSeen and LastSeen default to now.
func (t *sqliteTx) PutListing(l Listing) error {
	if l.Source == "" || l.Name == "" {
		return fmt.Errorf("put listing %q of %q: source and name are required", l.Name, l.Source)
	}
	now := t.now()
	if l.FirstSeen.IsZero() {
		l.FirstSeen = now
	}
	if l.LastSeen.IsZero() {
		l.LastSeen = now
	}
	_, err := t.exec(`INSERT INTO listings (source, name, size, mtime, first_seen, last_seen) VALUES (?,?,?,?,?,?)
		ON CONFLICT (source, name) DO UPDATE SET size = excluded.size, mtime = excluded.mtime,
			first_seen = excluded.first_seen, last_seen = excluded.last_seen`,
		l.Source, l.Name, l.Size, unixNano(l.MTime), unixNano(l.FirstSeen), unixNano(l.LastSeen))
	if err != nil {
		return fmt.Errorf("put listing %s of %s: %w", l.Name, l.Source, err)
	}
	return nil
}

// DeleteListing forgets a remote file (nothing when absent).
func (t *sqliteTx) DeleteListing(source, name string) error {
	if _, err := t.exec(`DELETE FROM listings WHERE source = ? AND name = ?`, source, name); err != nil {
		return fmt.Errorf("delete listing %s of %s: %w", name, source, err)
	}
	return nil
}

// PutHandoff inserts or replaces the handoff h.ID. Created is set to now
// when zero and kept from the stored row on update; Updated is set to now.
func (t *sqliteTx) PutHandoff(h Handoff) error {
	if h.ID == "" {
		return errors.New("put handoff: ID is required")
	}
	now := t.now()
	if h.Created.IsZero() {
		h.Created = now
	}
	_, err := t.exec(`INSERT INTO handoffs (id, source, kind, path, status, created, updated) VALUES (?,?,?,?,?,?,?)
		ON CONFLICT (id) DO UPDATE SET source = excluded.source, kind = excluded.kind, path = excluded.path,
			status = excluded.status, updated = excluded.updated`,
		h.ID, h.Source, h.Kind, h.Path, h.Status, unixNano(h.Created), unixNano(now))
	if err != nil {
		return fmt.Errorf("put handoff %s: %w", h.ID, err)
	}
	return nil
}

// DeleteDelivery removes a delivery with its files and observations
// (nothing when absent).
func (t *sqliteTx) DeleteDelivery(id int64) error {
	if _, err := t.exec(`DELETE FROM deliveries WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete delivery %d: %w", id, err)
	}
	return nil
}

// Lock takes the lock for info unless another holder's unexpired lock is
// there (*LockedError). Taking it again with the same ID renews it. A zero
// Expires never expires; a zero Created is set to now.
func (s *SQLite) Lock(ctx context.Context, info LockInfo) error {
	if s.ro {
		return ErrReadOnly
	}
	if info.ID == "" {
		return errors.New("lock: ID is required")
	}
	now := s.now()
	if info.Created.IsZero() {
		info.Created = now
	}
	return s.lockTx(ctx, func(tx *sql.Tx, held *LockInfo) error {
		if held != nil && held.ID != info.ID && (held.Expires.IsZero() || held.Expires.After(now)) {
			return &LockedError{Holder: *held}
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO lock (id, lock_id, operation, who, pid, created, expires)
			VALUES (1,?,?,?,?,?,?)`, info.ID, info.Operation, info.Who, info.PID, unixNano(info.Created), unixNano(info.Expires))
		return err
	})
}

// Unlock releases the lock if id holds it.
func (s *SQLite) Unlock(ctx context.Context, id string) error {
	return s.unlock(ctx, id, "")
}

// ForceUnlock removes the lock if id is the current holder's ID (which the
// LockedError message prints), and records it in the audit log.
func (s *SQLite) ForceUnlock(ctx context.Context, id string) error {
	return s.unlock(ctx, id, "force-unlock")
}

func (s *SQLite) unlock(ctx context.Context, id, audit string) error {
	if s.ro {
		return ErrReadOnly
	}
	return s.lockTx(ctx, func(tx *sql.Tx, held *LockInfo) error {
		if held == nil {
			return fmt.Errorf("unlock %s: state is not locked", id)
		}
		if held.ID != id {
			return fmt.Errorf("unlock %s: the lock is held under ID %s (by %s, operation %q, pid %d)",
				id, held.ID, held.Who, held.Operation, held.PID)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM lock WHERE id = 1`); err != nil {
			return err
		}
		if audit == "" {
			return nil
		}
		detail, err := json.Marshal(held)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO audit (time, who, operation, plan_hash, outcome, detail)
			VALUES (?,?,?,'','ok',?)`, unixNano(s.now()), CurrentWho(), audit, string(detail))
		return err
	})
}

// lockTx runs fn in a write transaction with the current holder (nil when
// none). Lock changes do not bump the serial: the lock is not state.
func (s *SQLite) lockTx(ctx context.Context, fn func(*sql.Tx, *LockInfo) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state lock: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	held, err := scanLock(tx.QueryRowContext(ctx, lockQuery))
	if err != nil {
		return err
	}
	if err := fn(tx, held); err != nil {
		return err
	}
	return tx.Commit()
}

const lockQuery = `SELECT lock_id, operation, who, pid, created, expires FROM lock WHERE id = 1`

func scanLock(row *sql.Row) (*LockInfo, error) {
	var li LockInfo
	var created, expires int64
	err := row.Scan(&li.ID, &li.Operation, &li.Who, &li.PID, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state lock: %w", err)
	}
	li.Created, li.Expires = fromNano(created), fromNano(expires)
	return &li, nil
}

// LockHolder returns the current lock, or nil when unlocked. An expired
// lock is returned as it is; the next Lock takes it over.
func (s *SQLite) LockHolder(ctx context.Context) (*LockInfo, error) {
	return scanLock(s.r.QueryRowContext(ctx, lockQuery))
}
