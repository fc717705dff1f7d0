package state

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// These tests use a migration list one step longer than the real one to
// exercise upgrades and version checks without a second real migration.
var testMigs = append(append([]string(nil), migrations...), `CREATE TABLE future (x INTEGER)`)

func TestSchemaVersions(t *testing.T) {
	if SchemaVersion != len(migrations) {
		t.Fatalf("SchemaVersion = %d, but there are %d migrations", SchemaVersion, len(migrations))
	}
	ctx := context.Background()
	tests := []struct {
		name        string
		createWith  []string
		openWith    []string
		opts        Options
		wantVersion int    // 0 when the open must fail
		wantErr     string // in the error
	}{
		{"same version", migrations, migrations, Options{}, len(migrations), ""},
		{"older is migrated", migrations, testMigs, Options{}, len(testMigs), ""},
		{"older read-only is refused", migrations, testMigs, Options{ReadOnly: true}, 0, "older than this im1's"},
		{"newer is refused", testMigs, migrations, Options{}, 0, "newer than this im1"},
		{"newer read-only is refused", testMigs, migrations, Options{ReadOnly: true}, 0, "newer than this im1"},
		{"newer with create is refused", testMigs, migrations, Options{Create: true}, 0, "newer than this im1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "im1.state")
			s, err := openSQLite(ctx, path, Options{Create: true}, tc.createWith)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := s.Meta(ctx)
			s.Close()

			s, err = openSQLite(ctx, path, tc.opts, tc.openWith)
			if tc.wantVersion == 0 {
				var sv *SchemaVersionError
				if !errors.As(err, &sv) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("open = %v, want *SchemaVersionError with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got, err := s.Meta(ctx)
			if err != nil || got.SchemaVersion != tc.wantVersion || got.Lineage != m.Lineage {
				t.Errorf("meta = %+v, %v; want version %d, lineage %s", got, err, tc.wantVersion, m.Lineage)
			}
		})
	}
}

func TestReadOnlyConnectionCannotWrite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "im1.state")
	s, err := OpenSQLite(ctx, path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	ro, err := OpenSQLite(ctx, path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if ro.w != nil {
		t.Fatal("read-only state has a writer")
	}
	// Straight at the mode=ro connection, past the ErrReadOnly checks.
	_, err = ro.r.ExecContext(ctx, `INSERT INTO listings (source, name, size, mtime, first_seen, last_seen) VALUES ('s', 'n', 0, 0, 0, 0)`)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "readonly") {
		t.Errorf("write on a mode=ro connection: %v", err)
	}
}

// TestDigestsAfterUpgrade: a state written before digests existed has
// none until its next write (plans read the rows meanwhile); that write
// builds every missing digest, not only its own extract's.
func TestDigestsAfterUpgrade(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "im1.state")
	s, err := openSQLite(ctx, path, Options{Create: true}, migrations[:1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO deliveries (extract, source, day, batch_id, kind, seq_from, seq_to, cutoff,
		status, reason, path, manifest, created, updated) VALUES ('extract.old', 'emis_site.s', '2026-01-01', 'b1', 'full', '1', '1', 5,
		'landed', '', '', '', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = openSQLite(ctx, path, Options{}, migrations)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ds, err := s.DeliveryDigests(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("digests right after the upgrade = %v, %v; want none (dirty)", ds, err)
	}
	err = s.Tx(ctx, func(tx Tx) error {
		return tx.PutDelivery(&Delivery{Extract: "extract.new", Source: "emis_site.s", Day: "2026-01-02", BatchID: "b2", Kind: "delta", Status: DeliveryLanded})
	})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := s.DeliveryDigests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old, err := ds.Get("extract.old")
	if err != nil || old == nil || len(old.Groups) != 1 || old.Groups[0].Batches[0] != "b1" || old.Groups[0].Cutoffs[0] != 5 {
		t.Errorf("extract.old digest = %+v, %v", old, err)
	}
	if n, _ := ds.Get("extract.new"); n == nil || len(n.Groups[0].Cutoffs) != 1 {
		t.Errorf("extract.new digest = %+v", n)
	}
}
