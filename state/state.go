// Package state keeps what im1 knows: resources and their attributes,
// every delivery and file it landed, observations of the suppliers' data,
// handoffs, the audit log and the lock. The Store interface is small so a
// PostgreSQL backend can follow the SQLite one with the same schema.
package state

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Meta identifies a state: Lineage is fixed at creation, Serial is bumped by
// every committed change.
type Meta struct {
	Lineage       string
	Serial        int64
	SchemaVersion int
	Created       time.Time
}

// Resource is one resource instance in state. Attrs holds the non-sensitive
// attribute values as cty JSON (AttrsType is the cty JSON type, so state can
// be read without the schema). Private is provider-private data such as an
// S2K-protected private key: never printed, never in clear.
type Resource struct {
	Addr      string // e.g. key.emis_2026, organisation.practices["A81001"]
	Type      string
	Name      string
	Key       string // for_each key, "" when none
	Status    string // StatusReady, StatusTainted, StatusAwaitingSupplier
	Attrs     []byte
	AttrsType []byte
	Private   []byte
	Deps      []string
	UpdatedAt time.Time
}

// Resource statuses.
const (
	StatusReady            = "ready"
	StatusTainted          = "tainted"
	StatusAwaitingSupplier = "awaiting_supplier"
)

// LockInfo describes the holder of the apply lock.
type LockInfo struct {
	ID        string
	Operation string // "apply", "state rm", ...
	Who       string // user@host
	PID       int
	Created   time.Time
	Expires   time.Time
}

// LockedError is returned when another holder has the lock.
type LockedError struct{ Holder LockInfo }

func (e *LockedError) Error() string {
	h := e.Holder
	return fmt.Sprintf("state is locked by %s (operation %q, pid %d, since %s, lock ID %s); "+
		"if that process is gone, run `im1 force-unlock %s`",
		h.Who, h.Operation, h.PID, h.Created.UTC().Format(time.RFC3339), h.ID, h.ID)
}

// ErrLineage is returned when a state belongs to another configuration.
var ErrLineage = errors.New("state lineage mismatch")

// AuditEntry is one append-only record of an apply (or other mutation).
type AuditEntry struct {
	ID        int64
	Time      time.Time
	Who       string
	Operation string // apply, state rm, state mv, force-unlock, purge-withdrawn
	PlanHash  string
	Outcome   string // ok, error, interrupted
	Detail    string // JSON
}

// Delivery is one batch delivered by a supplier and what im1 did with it.
type Delivery struct {
	ID       int64
	Extract  string // extract resource instance address
	Source   string // emis_site.x or systmone_strategic_report.x
	Day      string // UK delivery day or period start, yyyy-mm-dd
	BatchID  string // EMIS 2026-11-21T02.15.00, TPP 20261121_0215
	Kind     string // full | delta
	SeqFrom  string // EMIS first processing id, TPP DateExtractFrom
	SeqTo    string // EMIS last processing id, TPP DateExtractTo
	Cutoff   time.Time
	Status   string // DeliveryLanded, DeliveryQuarantined, DeliveryPending
	Reason   string
	Path     string // landed directory
	Manifest string // sha256 of manifest.json
	Created  time.Time
	Updated  time.Time
}

// Delivery statuses.
const (
	DeliveryPending     = "pending"
	DeliveryLanded      = "landed"
	DeliveryQuarantined = "quarantined"
	DeliveryWithdrawn   = "withdrawn"
	DeliveryExpired     = "expired"
)

// File is one file of a delivery.
type File struct {
	ID            int64
	DeliveryID    int64
	Table         string
	RemoteName    string
	RemoteSize    int64
	RemoteMTime   time.Time
	ArchivePath   string
	ArchiveSHA256 string
	ArchiveSize   int64
	LandedPath    string
	LandedSHA256  string
	LandedSize    int64
	Rows          int64
	DeletedRows   int64
	BadNHS        int64
	KeyID         string // fingerprint of the key that decrypted it
	Status        string // FileLanded, FileQuarantined
	Reason        string
}

// File statuses.
const (
	FileLanded      = "landed"
	FileQuarantined = "quarantined"
)

// Observation records what a delivery said about one organisation
// (EMIS Agreements_SharingOrganisation + Admin_Organisation, TPP SROrganisation).
type Observation struct {
	DeliveryID  int64
	Source      string
	OrgGUID     string
	ODS         string
	Name        string
	IsActivated bool
	Disabled    bool
	Deleted     bool
	Rows        int64 // rows in the delivery for this organisation
}

// Listing is a remote file as seen by a listing; two listings that agree on
// size and time make a file stable enough to fetch.
type Listing struct {
	Source    string
	Name      string
	Size      int64
	MTime     time.Time
	FirstSeen time.Time
	LastSeen  time.Time
}

// Handoff is a step handed to a supplier through the handoff directory.
type Handoff struct {
	ID      string
	Source  string // resource address it belongs to
	Kind    string // public_key, report_config, reextract_request
	Path    string
	Status  string // HandoffAwaiting, HandoffDone, HandoffSuperseded
	Created time.Time
	Updated time.Time
}

// Handoff statuses.
const (
	HandoffAwaiting   = "awaiting_supplier"
	HandoffDone       = "done"
	HandoffSuperseded = "superseded"
)

// Store is the state backend. Every write method commits its own
// transaction and bumps the serial once; Tx groups several writes.
type Store interface {
	Meta(ctx context.Context) (Meta, error)
	Serial(ctx context.Context) (int64, error)
	// Generation changes whenever state may have changed as far as this
	// handle knows: at each of its own commits, and when Meta or Serial
	// reads a serial other than the last one read (another process's
	// commit). Caches of state read within a run key on it: it costs
	// nothing to compare, where asking SQLite for the serial costs tens
	// of microseconds, once per instance over thousands of sites.
	Generation() uint64

	Resources(ctx context.Context) ([]Resource, error)
	// ResourceHeads is Resources with only address, type and status, and
	// attributes only for the types named.
	ResourceHeads(ctx context.Context, attrsOf ...string) ([]Resource, error)
	Resource(ctx context.Context, addr string) (*Resource, error) // nil, nil when absent

	// Tx runs fn in one transaction; the serial is bumped once on commit if
	// fn wrote anything.
	Tx(ctx context.Context, fn func(Tx) error) error

	Lock(ctx context.Context, info LockInfo) error // *LockedError when held
	Unlock(ctx context.Context, id string) error
	ForceUnlock(ctx context.Context, id string) error
	LockHolder(ctx context.Context) (*LockInfo, error)

	Audit(ctx context.Context) ([]AuditEntry, error)

	Deliveries(ctx context.Context, extract string) ([]Delivery, error)
	// DeliveryDigests summarises every extract's deliveries, a row each.
	DeliveryDigests(ctx context.Context) (Digests, error)
	Files(ctx context.Context, deliveryID int64) ([]File, error)
	Observations(ctx context.Context, source string) ([]Observation, error)
	Listings(ctx context.Context, source string) ([]Listing, error)
	Handoffs(ctx context.Context, source string) ([]Handoff, error)

	// Backup writes a consistent copy (VACUUM INTO).
	Backup(ctx context.Context, path string) error
	// IntegrityCheck runs PRAGMA integrity_check and returns its result ("ok").
	IntegrityCheck(ctx context.Context) (string, error)
	Close() error
}

// Tx is the write side, used inside Store.Tx.
type Tx interface {
	PutResource(r Resource) error
	DeleteResource(addr string) error
	MoveResource(from, to string) error
	AppendAudit(e AuditEntry) (int64, error)

	PutDelivery(d *Delivery) error // inserts when ID == 0 and sets it
	PutFile(f *File) error
	PutObservations(deliveryID int64, obs []Observation) error
	PutListing(l Listing) error
	DeleteListing(source, name string) error
	PutHandoff(h Handoff) error
	DeleteDelivery(id int64) error
}
