package state

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations[i] takes the schema from version i to version i+1; the version
// lives in PRAGMA user_version. Never edit a released migration: append.
//
// Times are INTEGER unix nanoseconds UTC, 0 for the zero time, everywhere,
// so ordering and range scans are plain integer comparisons.
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE meta (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	lineage TEXT    NOT NULL,
	serial  INTEGER NOT NULL,
	created INTEGER NOT NULL
);

CREATE TABLE resources (
	addr       TEXT PRIMARY KEY,
	type       TEXT NOT NULL,
	name       TEXT NOT NULL,
	key        TEXT NOT NULL DEFAULT '',
	status     TEXT NOT NULL,
	attrs      BLOB,
	attrs_type BLOB,
	private    BLOB,
	deps       TEXT NOT NULL DEFAULT '[]',
	updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE audit (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	time      INTEGER NOT NULL,
	who       TEXT NOT NULL,
	operation TEXT NOT NULL,
	plan_hash TEXT NOT NULL,
	outcome   TEXT NOT NULL,
	detail    TEXT NOT NULL
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;

CREATE TABLE lock (
	id        INTEGER PRIMARY KEY CHECK (id = 1),
	lock_id   TEXT    NOT NULL,
	operation TEXT    NOT NULL,
	who       TEXT    NOT NULL,
	pid       INTEGER NOT NULL,
	created   INTEGER NOT NULL,
	expires   INTEGER NOT NULL
);

CREATE TABLE deliveries (
	id       INTEGER PRIMARY KEY,
	extract  TEXT NOT NULL,
	source   TEXT NOT NULL,
	day      TEXT NOT NULL,
	batch_id TEXT NOT NULL,
	kind     TEXT NOT NULL,
	seq_from TEXT NOT NULL,
	seq_to   TEXT NOT NULL,
	cutoff   INTEGER NOT NULL,
	status   TEXT NOT NULL,
	reason   TEXT NOT NULL,
	path     TEXT NOT NULL,
	manifest TEXT NOT NULL,
	created  INTEGER NOT NULL,
	updated  INTEGER NOT NULL
);
-- (extract, day, batch_id) also serves EachDelivery's ORDER BY.
CREATE INDEX deliveries_extract_day ON deliveries (extract, day, batch_id);
CREATE INDEX deliveries_source_batch ON deliveries (source, batch_id);

CREATE TABLE files (
	id             INTEGER PRIMARY KEY,
	delivery_id    INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
	tbl            TEXT    NOT NULL,
	remote_name    TEXT    NOT NULL,
	remote_size    INTEGER NOT NULL,
	remote_mtime   INTEGER NOT NULL,
	archive_path   TEXT    NOT NULL,
	archive_sha256 TEXT    NOT NULL,
	archive_size   INTEGER NOT NULL,
	landed_path    TEXT    NOT NULL,
	landed_sha256  TEXT    NOT NULL,
	landed_size    INTEGER NOT NULL,
	rows           INTEGER NOT NULL,
	deleted_rows   INTEGER NOT NULL,
	bad_nhs        INTEGER NOT NULL,
	key_id         TEXT    NOT NULL,
	status         TEXT    NOT NULL,
	reason         TEXT    NOT NULL
);
CREATE INDEX files_delivery ON files (delivery_id);

CREATE TABLE observations (
	delivery_id  INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
	source       TEXT    NOT NULL,
	org_guid     TEXT    NOT NULL,
	ods          TEXT    NOT NULL,
	name         TEXT    NOT NULL,
	is_activated INTEGER NOT NULL,
	disabled     INTEGER NOT NULL,
	deleted      INTEGER NOT NULL,
	rows         INTEGER NOT NULL,
	PRIMARY KEY (delivery_id, org_guid)
) WITHOUT ROWID;
CREATE INDEX observations_source ON observations (source, delivery_id);

CREATE TABLE listings (
	source     TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	size       INTEGER NOT NULL,
	mtime      INTEGER NOT NULL,
	first_seen INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL,
	PRIMARY KEY (source, name)
) WITHOUT ROWID;

CREATE TABLE handoffs (
	id      TEXT PRIMARY KEY,
	source  TEXT NOT NULL,
	kind    TEXT NOT NULL,
	path    TEXT NOT NULL,
	status  TEXT NOT NULL,
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX handoffs_source ON handoffs (source);
`,
	// 2: per-extract delivery digests (see DeliveryDigest). Triggers mark
	// an extract dirty on every write to its deliveries, in the writing
	// transaction; Tx rebuilds dirty digests before it commits. (No OR
	// IGNORE in the triggers: an outer statement's conflict handling,
	// such as PutDelivery's upsert, overrides it.) Existing
	// extracts start dirty: plans read their rows until the next write.
	`
CREATE TABLE delivery_digests (
	extract TEXT PRIMARY KEY,
	digest  BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE digest_dirty (
	extract TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TRIGGER deliveries_digest_insert AFTER INSERT ON deliveries BEGIN
	INSERT INTO digest_dirty (extract) SELECT NEW.extract WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE extract = NEW.extract);
END;
CREATE TRIGGER deliveries_digest_update AFTER UPDATE ON deliveries BEGIN
	INSERT INTO digest_dirty (extract) SELECT OLD.extract WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE extract = OLD.extract);
	INSERT INTO digest_dirty (extract) SELECT NEW.extract WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE extract = NEW.extract);
END;
CREATE TRIGGER deliveries_digest_delete AFTER DELETE ON deliveries BEGIN
	INSERT INTO digest_dirty (extract) SELECT OLD.extract WHERE NOT EXISTS (SELECT 1 FROM digest_dirty WHERE extract = OLD.extract);
END;
INSERT OR IGNORE INTO digest_dirty (extract) SELECT DISTINCT extract FROM deliveries;
`,
}

// SchemaVersion is the schema version this code writes and reads; it is
// len(migrations), which a test checks.
const SchemaVersion = 2

// SchemaVersionError reports a state whose schema this code cannot use as
// it is: newer than the code knows, or older in a read-only open.
type SchemaVersionError struct {
	Path string
	Have int // version found in the file
	Want int // version this code knows
}

func (e *SchemaVersionError) Error() string {
	if e.Have > e.Want {
		return fmt.Sprintf("%s: state schema version %d is newer than this im1 understands (%d); upgrade im1",
			e.Path, e.Have, e.Want)
	}
	return fmt.Sprintf("%s: state schema version %d is older than this im1's (%d); "+
		"run `im1 init` or `im1 apply` to upgrade it (read-only commands do not migrate)",
		e.Path, e.Have, e.Want)
}

// migrate brings the schema up to len(migs) in one transaction, creating the
// meta row when create is set and there is none. It runs on the writer,
// whose transactions BEGIN IMMEDIATE, so two processes opening the same new
// file at once serialise here and the second sees the first's work.
func migrate(ctx context.Context, db *sql.DB, path string, migs []string, create bool, newLineage func() string, now int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin migration: %w", path, err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit

	var have int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&have); err != nil {
		return fmt.Errorf("%s: read schema version: %w", path, err)
	}
	if have > len(migs) {
		return &SchemaVersionError{Path: path, Have: have, Want: len(migs)}
	}
	if have == 0 {
		// Refuse to add our tables to somebody else's database.
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&n); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if n > 0 {
			return fmt.Errorf("%s: not an im1 state database (it has tables but no im1 schema version)", path)
		}
		if !create {
			return fmt.Errorf("%s: %w (the file holds no im1 state; run `im1 init`)", path, ErrNoState)
		}
	}
	for v := have; v < len(migs); v++ {
		if _, err := tx.ExecContext(ctx, migs[v]); err != nil {
			return fmt.Errorf("%s: migration to schema version %d: %w", path, v+1, err)
		}
		// PRAGMA takes no bind parameters; v is our own integer.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v+1)); err != nil {
			return fmt.Errorf("%s: set schema version %d: %w", path, v+1, err)
		}
	}
	var metaRows int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM meta`).Scan(&metaRows); err != nil {
		return fmt.Errorf("%s: read meta: %w", path, err)
	}
	if metaRows == 0 {
		if !create {
			return fmt.Errorf("%s: %w (no lineage recorded; run `im1 init`)", path, ErrNoState)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (id, lineage, serial, created) VALUES (1, ?, 0, ?)`,
			newLineage(), now); err != nil {
			return fmt.Errorf("%s: create meta: %w", path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit migration: %w", path, err)
	}
	return nil
}
