package state_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/im1dev/im1/state"
	"github.com/im1dev/im1/state/statetest"
)

var ctx = context.Background()

func mustTx(t *testing.T, s state.Store, fn func(state.Tx) error) {
	t.Helper()
	if err := s.Tx(ctx, fn); err != nil {
		t.Fatalf("Tx: %v", err)
	}
}

func serial(t *testing.T, s state.Store) int64 {
	t.Helper()
	m, err := s.Meta(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m.Serial
}

func TestCreateReopenKeepsLineage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "im1.state")
	clock := statetest.NewClock(statetest.Epoch, 0)
	s, err := state.OpenSQLite(ctx, path, state.Options{Create: true, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Meta(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uuid.Parse(m.Lineage); err != nil {
		t.Errorf("lineage %q is not a uuid: %v", m.Lineage, err)
	}
	if m.Serial != 0 || !m.Created.Equal(statetest.Epoch) || m.SchemaVersion != state.SchemaVersion {
		t.Errorf("new state meta = %+v", m)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (err %v), want %v", p, fi.Mode(), err, want)
		}
	}
	mustTx(t, s, func(tx state.Tx) error {
		return tx.PutResource(state.Resource{Addr: "key.a", Type: "key", Name: "a", Status: state.StatusReady})
	})
	for _, suffix := range []string{"-wal", "-shm"} {
		if fi, err := os.Stat(path + suffix); err == nil && fi.Mode() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", suffix, fi.Mode())
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for _, opts := range []state.Options{{}, {Create: true}, {ReadOnly: true}} {
		s := statetest.Open(t, path, opts)
		got, err := s.Meta(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Lineage != m.Lineage || got.Serial != 1 || !got.Created.Equal(m.Created) {
			t.Errorf("reopen %+v: meta %+v, want lineage %s serial 1", opts, got, m.Lineage)
		}
		s.Close()
	}
}

func TestOpenMissing(t *testing.T) {
	for _, opts := range []state.Options{{}, {ReadOnly: true}, {ReadOnly: true, Create: true}} {
		path := filepath.Join(t.TempDir(), "sub", "im1.state")
		_, err := state.OpenSQLite(ctx, path, opts)
		if !errors.Is(err, state.ErrNoState) {
			t.Errorf("%+v: err = %v, want ErrNoState", opts, err)
		}
		if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%+v: created %s", opts, filepath.Dir(path))
		}
	}
}

func TestNotAnIm1Database(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (x)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, opts := range []state.Options{{}, {Create: true}, {ReadOnly: true}} {
		if _, err := state.OpenSQLite(ctx, path, opts); err == nil {
			t.Errorf("%+v: opened a foreign database", opts)
		}
	}
}

func TestSerial(t *testing.T) {
	res := state.Resource{Addr: "key.a", Type: "key", Name: "a", Status: state.StatusReady}
	tests := []struct {
		name string
		fn   func(state.Tx) error
		bump int64
	}{
		{"empty", func(state.Tx) error { return nil }, 0},
		{"one write", func(tx state.Tx) error { return tx.PutResource(res) }, 1},
		{"many writes", func(tx state.Tx) error {
			for _, a := range []string{"b", "c", "d"} {
				if err := tx.PutResource(state.Resource{Addr: "key." + a, Type: "key", Name: a, Status: state.StatusReady}); err != nil {
					return err
				}
			}
			return tx.PutListing(state.Listing{Source: "emis_site.x", Name: "f.gpg"})
		}, 1},
		{"delete of absent", func(tx state.Tx) error { return tx.DeleteResource("key.absent") }, 0},
		{"audit only", func(tx state.Tx) error {
			_, err := tx.AppendAudit(state.AuditEntry{Operation: "apply", Outcome: "error"})
			return err
		}, 0},
		{"error", func(tx state.Tx) error {
			if err := tx.PutResource(res); err != nil {
				return err
			}
			return errors.New("boom")
		}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := statetest.New(t)
			before := serial(t, s)
			_ = s.Tx(ctx, tc.fn)
			if got := serial(t, s) - before; got != tc.bump {
				t.Errorf("serial moved by %d, want %d", got, tc.bump)
			}
		})
	}
}

// TestGeneration: a handle's generation moves at each of its own commits
// (a failed Tx that wrote nothing included: it is a cheap over-estimate),
// and, for another handle's commits, when it next reads the serial; it does
// not move while nothing is written.
func TestGeneration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	a, err := state.OpenSQLite(ctx, path, state.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := state.OpenSQLite(ctx, path, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	put := func(name string) {
		mustTx(t, a, func(tx state.Tx) error {
			return tx.PutResource(state.Resource{Addr: "key." + name, Type: "key", Name: name, Status: state.StatusReady})
		})
	}
	if _, err := b.Serial(ctx); err != nil {
		t.Fatal(err)
	}
	ga, gb := a.Generation(), b.Generation()
	if _, err := b.Serial(ctx); err != nil || b.Generation() != gb {
		t.Fatalf("reading an unchanged serial moved the generation (%v)", err)
	}
	put("x")
	if a.Generation() == ga {
		t.Fatal("a commit did not move the writer's generation")
	}
	if b.Generation() != gb {
		t.Fatal("the reader's generation moved before it read the serial")
	}
	if _, err := b.Meta(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Generation() == gb {
		t.Fatal("reading another handle's new serial did not move the generation")
	}
	gb = b.Generation()
	put("y")
	if _, err := b.Serial(ctx); err != nil || b.Generation() == gb {
		t.Fatalf("Serial did not notice another commit (%v)", err)
	}
}

func TestRollback(t *testing.T) {
	s := statetest.New(t)
	boom := errors.New("boom")
	write := func(tx state.Tx) {
		if err := tx.PutResource(state.Resource{Addr: "key.a", Type: "key", Name: "a", Status: state.StatusReady}); err != nil {
			t.Fatal(err)
		}
		d := &state.Delivery{Extract: "emis_extract.x", Source: "emis_site.x", Day: "2026-11-21", BatchID: "b1"}
		if err := tx.PutDelivery(d); err != nil {
			t.Fatal(err)
		}
		if err := tx.PutFile(&state.File{DeliveryID: d.ID, Table: "Patient"}); err != nil {
			t.Fatal(err)
		}
		if err := tx.PutHandoff(state.Handoff{ID: "h1", Source: "emis_site.x"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Tx(ctx, func(tx state.Tx) error { write(tx); return boom }); !errors.Is(err, boom) {
		t.Fatalf("Tx error = %v, want boom", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic not propagated")
			}
		}()
		_ = s.Tx(ctx, func(tx state.Tx) error { write(tx); panic("boom") })
	}()
	assertEmpty(t, s)
	// The writer is usable after both.
	mustTx(t, s, func(tx state.Tx) error { write(tx); return nil })
	if serial(t, s) != 1 {
		t.Errorf("serial = %d, want 1", serial(t, s))
	}
}

func assertEmpty(t *testing.T, s state.Store) {
	t.Helper()
	rs, err1 := s.Resources(ctx)
	ds, err2 := s.Deliveries(ctx, "")
	hs, err3 := s.Handoffs(ctx, "")
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if len(rs)+len(ds)+len(hs) != 0 || serial(t, s) != 0 {
		t.Errorf("state not empty: %d resources, %d deliveries, %d handoffs, serial %d", len(rs), len(ds), len(hs), serial(t, s))
	}
}

func TestResources(t *testing.T) {
	s := statetest.New(t)
	key := state.Resource{
		Addr: "key.emis_2026", Type: "key", Name: "emis_2026", Status: state.StatusReady,
		Attrs: []byte(`{"fingerprint":"ABC"}`), AttrsType: []byte(`["object",{"fingerprint":"string"}]`),
		Private: []byte{0xc5, 0x00, 0x01},
	}
	org := state.Resource{
		Addr: `organisation.practices["A81001"]`, Type: "organisation", Name: "practices", Key: "A81001",
		Status: state.StatusAwaitingSupplier, Deps: []string{"key.emis_2026", "emis_site.x"},
	}
	mustTx(t, s, func(tx state.Tx) error {
		return errors.Join(tx.PutResource(key), tx.PutResource(org))
	})
	got, err := s.Resource(ctx, key.Addr)
	if err != nil || got == nil {
		t.Fatalf("Resource = %v, %v", got, err)
	}
	if got.UpdatedAt.IsZero() {
		t.Error("UpdatedAt not set")
	}
	key.UpdatedAt = got.UpdatedAt
	if !reflect.DeepEqual(*got, key) {
		t.Errorf("Resource =\n%+v, want\n%+v", *got, key)
	}
	if r, err := s.Resource(ctx, "key.absent"); r != nil || err != nil {
		t.Errorf("absent Resource = %v, %v; want nil, nil", r, err)
	}

	// Update in place.
	key.Status = state.StatusTainted
	mustTx(t, s, func(tx state.Tx) error { return tx.PutResource(key) })
	if got, _ := s.Resource(ctx, key.Addr); got.Status != state.StatusTainted {
		t.Errorf("status after update = %q", got.Status)
	}

	// Move: the row, dependants' deps and records under the address follow.
	mustTx(t, s, func(tx state.Tx) error {
		return errors.Join(
			tx.PutDelivery(&state.Delivery{Extract: "emis_extract.x", Source: "emis_site.x", Day: "2026-11-21"}),
			tx.PutListing(state.Listing{Source: "emis_site.x", Name: "a.gpg"}),
			tx.PutResource(state.Resource{Addr: "emis_site.x", Type: "emis_site", Name: "x", Status: state.StatusReady}),
		)
	})
	mustTx(t, s, func(tx state.Tx) error { return tx.MoveResource("emis_site.x", `emis_site.y["k 1"]`) })
	moved, _ := s.Resource(ctx, `emis_site.y["k 1"]`)
	if moved == nil || moved.Name != "y" || moved.Key != "k 1" {
		t.Errorf("moved resource = %+v", moved)
	}
	if old, _ := s.Resource(ctx, "emis_site.x"); old != nil {
		t.Error("old address still present")
	}
	if o, _ := s.Resource(ctx, org.Addr); !reflect.DeepEqual(o.Deps, []string{"key.emis_2026", `emis_site.y["k 1"]`}) {
		t.Errorf("deps after move = %q", o.Deps)
	}
	if ds, _ := s.Deliveries(ctx, "emis_extract.x"); len(ds) != 1 || ds[0].Source != `emis_site.y["k 1"]` {
		t.Errorf("delivery after move = %+v", ds)
	}
	if ls, _ := s.Listings(ctx, `emis_site.y["k 1"]`); len(ls) != 1 {
		t.Errorf("listings after move = %+v", ls)
	}

	for _, tc := range []struct{ from, to, want string }{
		{"key.absent", "key.b", "no resource"},
		{"key.emis_2026", org.Addr, "cannot change the resource type"},
		{"key.emis_2026", "key.emis_2026", "already exists"},
		{"key.emis_2026", "key", "invalid address"},
	} {
		before := serial(t, s)
		err := s.Tx(ctx, func(tx state.Tx) error { return tx.MoveResource(tc.from, tc.to) })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("move %s -> %s: err = %v, want %q", tc.from, tc.to, err, tc.want)
		}
		if serial(t, s) != before {
			t.Errorf("failed move bumped the serial")
		}
	}

	mustTx(t, s, func(tx state.Tx) error { return tx.DeleteResource(key.Addr) })
	rs, err := s.Resources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, r := range rs {
		addrs = append(addrs, r.Addr)
	}
	if want := []string{`emis_site.y["k 1"]`, org.Addr}; !reflect.DeepEqual(addrs, want) {
		t.Errorf("Resources = %q, want %q", addrs, want)
	}

	for _, bad := range []state.Resource{
		{Type: "key", Name: "a", Status: state.StatusReady},
		{Addr: "key.a", Type: "key", Name: "a", Status: "weird"},
	} {
		if err := s.Tx(ctx, func(tx state.Tx) error { return tx.PutResource(bad) }); err == nil {
			t.Errorf("PutResource(%+v) succeeded", bad)
		}
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct{ addr, typ, name, key string }{
		{"key.emis_2026", "key", "emis_2026", ""},
		{`organisation.practices["A81001"]`, "organisation", "practices", "A81001"},
		{`organisation.p["a\"b"]`, "organisation", "p", `a"b`},
		{`x.y[3]`, "x", "y", "3"},
		{"key", "", "", ""},
		{"key.", "", "", ""},
		{"a.b.c", "", "", ""},
		{`a.b["x"`, "", "", ""},
		{`a.b[x]`, "", "", ""},
	}
	for _, tc := range tests {
		typ, name, key, err := state.ParseAddr(tc.addr)
		if (err != nil) != (tc.typ == "") || typ != tc.typ || name != tc.name || key != tc.key {
			t.Errorf("ParseAddr(%q) = %q, %q, %q, %v", tc.addr, typ, name, key, err)
		}
	}
}

func TestDeliveriesRoundTrip(t *testing.T) {
	clock := statetest.NewClock(statetest.Epoch, time.Second)
	s := statetest.NewWithClock(t, clock)
	cutoff := time.Date(2026, 11, 21, 2, 15, 0, 0, time.UTC)
	// Inserted out of order; read back in (day, batch_id) order.
	in := []*state.Delivery{
		{Extract: "emis_extract.x", Source: "emis_site.x", Day: "2026-11-22", BatchID: "2026-11-22T02.15.00", Kind: "delta", SeqFrom: "11", SeqTo: "20", Cutoff: cutoff.AddDate(0, 0, 1), Status: state.DeliveryLanded, Path: "/l/2", Manifest: "ab"},
		{Extract: "emis_extract.x", Source: "emis_site.x", Day: "2026-11-21", BatchID: "2026-11-21T09.00.00", Kind: "delta", Status: state.DeliveryQuarantined, Reason: "bad MDC"},
		{Extract: "emis_extract.x", Source: "emis_site.x", Day: "2026-11-21", BatchID: "2026-11-21T02.15.00", Kind: "full", SeqFrom: "1", SeqTo: "10", Cutoff: cutoff, Status: state.DeliveryLanded},
		{Extract: "tpp_extract.y", Source: "systmone_strategic_report.y", Day: "2026-11-21", BatchID: "20261121_0215", Kind: "full", Status: state.DeliveryPending},
	}
	mtime := time.Date(2026, 11, 21, 2, 20, 0, 123456789, time.UTC)
	var files []*state.File
	mustTx(t, s, func(tx state.Tx) error {
		for _, d := range in {
			if err := tx.PutDelivery(d); err != nil {
				return err
			}
			if d.ID == 0 || d.Created.IsZero() || d.Updated.IsZero() {
				t.Errorf("PutDelivery did not set ID and times: %+v", d)
			}
		}
		for i, tbl := range []string{"Patient", "Observation"} {
			f := &state.File{DeliveryID: in[2].ID, Table: tbl, RemoteName: tbl + ".csv.gpg", RemoteSize: int64(100 + i),
				RemoteMTime: mtime, ArchivePath: "/a/" + tbl, ArchiveSHA256: "aa", ArchiveSize: 100, LandedPath: "/l/" + tbl,
				LandedSHA256: "bb", LandedSize: 200, Rows: 10, DeletedRows: 1, BadNHS: 2, KeyID: "FPR", Status: state.FileLanded}
			if err := tx.PutFile(f); err != nil {
				return err
			}
			files = append(files, f)
		}
		return tx.PutObservations(in[2].ID, []state.Observation{
			{Source: "emis_site.x", OrgGUID: "g2", ODS: "A81002", Name: "Two", Disabled: true, Rows: 5},
			{Source: "emis_site.x", OrgGUID: "g1", ODS: "A81001", Name: "One", IsActivated: true, Rows: 7},
		})
	})

	got, err := s.Deliveries(ctx, "emis_extract.x")
	if err != nil {
		t.Fatal(err)
	}
	want := []state.Delivery{*in[2], *in[1], *in[0]}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Deliveries =\n%+v\nwant\n%+v", got, want)
	}
	if all, _ := s.Deliveries(ctx, ""); len(all) != 4 || all[3].Extract != "tpp_extract.y" {
		t.Errorf("all deliveries = %+v", all)
	}
	var walked int
	stop := errors.New("stop")
	if err := s.EachDelivery(ctx, "emis_extract.x", func(state.Delivery) error { walked++; return stop }); !errors.Is(err, stop) || walked != 1 {
		t.Errorf("EachDelivery stop: err %v after %d", err, walked)
	}
	if d, err := s.Delivery(ctx, in[0].ID); err != nil || !reflect.DeepEqual(*d, *in[0]) {
		t.Errorf("Delivery = %+v, %v", d, err)
	}

	gotFiles, err := s.Files(ctx, in[2].ID)
	if err != nil || len(gotFiles) != 2 || !reflect.DeepEqual(gotFiles[0], *files[0]) || !reflect.DeepEqual(gotFiles[1], *files[1]) {
		t.Errorf("Files = %+v, %v", gotFiles, err)
	}
	obs, err := s.Observations(ctx, "emis_site.x")
	if err != nil || len(obs) != 2 || obs[0].OrgGUID != "g1" || obs[0].DeliveryID != in[2].ID || !obs[1].Disabled || obs[1].Rows != 5 {
		t.Errorf("Observations = %+v, %v", obs, err)
	}

	// Update by ID keeps Created, moves Updated; replacing observations.
	created := in[1].Created
	upd := *in[1]
	upd.Created = time.Time{}
	upd.Status = state.DeliveryWithdrawn
	mustTx(t, s, func(tx state.Tx) error {
		return errors.Join(tx.PutDelivery(&upd), tx.PutObservations(in[2].ID, []state.Observation{{Source: "emis_site.x", OrgGUID: "g3"}}))
	})
	if !upd.Created.Equal(created) || !upd.Updated.After(in[1].Updated) {
		t.Errorf("update: created %v (want %v), updated %v", upd.Created, created, upd.Updated)
	}
	if d, _ := s.Delivery(ctx, in[1].ID); d.Status != state.DeliveryWithdrawn || !d.Created.Equal(created) {
		t.Errorf("updated delivery = %+v", d)
	}
	if obs, _ := s.Observations(ctx, ""); len(obs) != 1 || obs[0].OrgGUID != "g3" {
		t.Errorf("observations after replace = %+v", obs)
	}

	// A file of a missing delivery violates the foreign key.
	if err := s.Tx(ctx, func(tx state.Tx) error { return tx.PutFile(&state.File{DeliveryID: 9999}) }); err == nil {
		t.Error("file of a missing delivery accepted")
	}
	// Deleting a delivery takes its files and observations.
	mustTx(t, s, func(tx state.Tx) error { return tx.DeleteDelivery(in[2].ID) })
	if fs, _ := s.Files(ctx, in[2].ID); len(fs) != 0 {
		t.Errorf("files survived their delivery: %+v", fs)
	}
	if obs, _ := s.Observations(ctx, ""); len(obs) != 0 {
		t.Errorf("observations survived their delivery: %+v", obs)
	}
}

func TestListingsAndHandoffs(t *testing.T) {
	clock := statetest.NewClock(statetest.Epoch, 0)
	s := statetest.NewWithClock(t, clock)
	mtime := statetest.Epoch.Add(-time.Hour)
	mustTx(t, s, func(tx state.Tx) error {
		return errors.Join(
			tx.PutListing(state.Listing{Source: "emis_site.x", Name: "b.gpg", Size: 2, MTime: mtime}),
			tx.PutListing(state.Listing{Source: "emis_site.x", Name: "a.gpg", Size: 1, MTime: mtime, FirstSeen: mtime}),
			tx.PutListing(state.Listing{Source: "emis_site.z", Name: "c.gpg"}),
			tx.PutHandoff(state.Handoff{ID: "h2", Source: "emis_site.x", Kind: "public_key", Path: "/h/2", Status: state.HandoffAwaiting}),
			tx.PutHandoff(state.Handoff{ID: "h1", Source: "emis_site.x", Kind: "reextract_request", Path: "/h/1", Status: state.HandoffAwaiting}),
		)
	})
	ls, err := s.Listings(ctx, "emis_site.x")
	want := []state.Listing{
		{Source: "emis_site.x", Name: "a.gpg", Size: 1, MTime: mtime, FirstSeen: mtime, LastSeen: statetest.Epoch},
		{Source: "emis_site.x", Name: "b.gpg", Size: 2, MTime: mtime, FirstSeen: statetest.Epoch, LastSeen: statetest.Epoch},
	}
	if err != nil || !reflect.DeepEqual(ls, want) {
		t.Errorf("Listings = %+v, %v\nwant %+v", ls, err, want)
	}
	clock.Advance(time.Minute)
	mustTx(t, s, func(tx state.Tx) error {
		return errors.Join(
			tx.DeleteListing("emis_site.x", "a.gpg"),
			tx.PutHandoff(state.Handoff{ID: "h1", Source: "emis_site.x", Kind: "reextract_request", Path: "/h/1", Status: state.HandoffDone}),
		)
	})
	if ls, _ := s.Listings(ctx, ""); len(ls) != 2 || ls[0].Name != "b.gpg" || ls[1].Name != "c.gpg" {
		t.Errorf("listings after delete = %+v", ls)
	}
	hs, err := s.Handoffs(ctx, "emis_site.x")
	wantH := []state.Handoff{
		{ID: "h1", Source: "emis_site.x", Kind: "reextract_request", Path: "/h/1", Status: state.HandoffDone, Created: statetest.Epoch, Updated: statetest.Epoch.Add(time.Minute)},
		{ID: "h2", Source: "emis_site.x", Kind: "public_key", Path: "/h/2", Status: state.HandoffAwaiting, Created: statetest.Epoch, Updated: statetest.Epoch},
	}
	if err != nil || !reflect.DeepEqual(hs, wantH) {
		t.Errorf("Handoffs = %+v, %v\nwant %+v", hs, err, wantH)
	}
}

func TestAuditAppendOnly(t *testing.T) {
	s := statetest.New(t)
	var ids []int64
	mustTx(t, s, func(tx state.Tx) error {
		for _, op := range []string{"apply", "state rm"} {
			id, err := tx.AppendAudit(state.AuditEntry{Who: "me@host", Operation: op, PlanHash: "h", Outcome: "ok", Detail: "{}"})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	got, err := s.Audit(ctx)
	if err != nil || len(got) != 2 || got[0].ID != ids[0] || got[1].Operation != "state rm" || got[0].Time.IsZero() {
		t.Fatalf("Audit = %+v, %v", got, err)
	}

	db, err := sql.Open("sqlite", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`UPDATE audit SET outcome = 'error'`, `DELETE FROM audit`} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want append-only", q, err)
		}
	}
	if again, _ := s.Audit(ctx); !reflect.DeepEqual(again, got) {
		t.Errorf("audit changed: %+v", again)
	}
}

func TestIntegrityCheck(t *testing.T) {
	s := statetest.New(t)
	if got, err := s.IntegrityCheck(ctx); err != nil || got != "ok" {
		t.Errorf("IntegrityCheck = %q, %v", got, err)
	}
}

func TestBackup(t *testing.T) {
	s := statetest.New(t)
	mustTx(t, s, func(tx state.Tx) error {
		return tx.PutResource(state.Resource{Addr: "key.a", Type: "key", Name: "a", Status: state.StatusReady, Private: []byte("protected")})
	})
	want, _ := s.Meta(ctx)
	dir := t.TempDir()

	ro := statetest.Open(t, s.Path(), state.Options{ReadOnly: true})
	for name, src := range map[string]*state.SQLite{"rw": s, "ro": ro} {
		path := filepath.Join(dir, name+".backup")
		if err := src.Backup(ctx, path); err != nil {
			t.Fatalf("%s: Backup: %v", name, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o600 {
			t.Errorf("%s: backup mode %v, %v", name, fi.Mode(), err)
		}
		if err := src.Backup(ctx, path); err == nil {
			t.Errorf("%s: Backup over an existing file succeeded", name)
		}
		b := statetest.Open(t, path, state.Options{})
		got, err := b.Meta(ctx)
		if err != nil || got.Lineage != want.Lineage || got.Serial != want.Serial {
			t.Errorf("%s: backup meta %+v, %v; want %+v", name, got, err, want)
		}
		if r, _ := b.Resource(ctx, "key.a"); r == nil || string(r.Private) != "protected" {
			t.Errorf("%s: backup resource = %+v", name, r)
		}
		if ok, err := b.IntegrityCheck(ctx); ok != "ok" || err != nil {
			t.Errorf("%s: backup integrity %q, %v", name, ok, err)
		}
	}
}

func TestReadOnly(t *testing.T) {
	s := statetest.New(t)
	mustTx(t, s, func(tx state.Tx) error {
		return tx.PutResource(state.Resource{Addr: "key.a", Type: "key", Name: "a", Status: state.StatusReady})
	})
	// A read-only open beside a live writer sees committed data.
	ro := statetest.Open(t, s.Path(), state.Options{ReadOnly: true})
	if r, err := ro.Resource(ctx, "key.a"); r == nil || err != nil {
		t.Fatalf("read-only Resource = %v, %v", r, err)
	}
	mustTx(t, s, func(tx state.Tx) error { return tx.DeleteResource("key.a") })
	if r, err := ro.Resource(ctx, "key.a"); r != nil || err != nil {
		t.Errorf("read-only view is stale: %v, %v", r, err)
	}
	writes := map[string]error{
		"Tx":          ro.Tx(ctx, func(state.Tx) error { return nil }),
		"Lock":        ro.Lock(ctx, state.LockInfo{ID: "x"}),
		"Unlock":      ro.Unlock(ctx, "x"),
		"ForceUnlock": ro.ForceUnlock(ctx, "x"),
	}
	for name, err := range writes {
		if !errors.Is(err, state.ErrReadOnly) {
			t.Errorf("%s on read-only state: %v", name, err)
		}
	}
}

func TestCheckLineage(t *testing.T) {
	s := statetest.New(t)
	m, _ := s.Meta(ctx)
	tests := []struct {
		name, want string
		write      bool
		ok         bool
	}{
		{"same", m.Lineage, false, true},
		{"other", uuid.NewString(), false, false},
		{"no state, nothing committed", "", false, true},
		{"no state, then committed", "", true, false},
		{"same after commit", m.Lineage, true, true},
	}
	for _, tc := range tests {
		if tc.write {
			mustTx(t, s, func(tx state.Tx) error { return tx.PutListing(state.Listing{Source: "s.x", Name: "n"}) })
		}
		err := state.CheckLineage(s, tc.want)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, state.ErrLineage)) {
			t.Errorf("%s: CheckLineage = %v", tc.name, err)
		}
		if err != nil && tc.want != "" && (!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), m.Lineage)) {
			t.Errorf("%s: error does not name both lineages: %v", tc.name, err)
		}
	}
}

func TestOpenMemory(t *testing.T) {
	clock := statetest.NewClock(statetest.Epoch, 0)
	s, err := state.OpenMemory(ctx, state.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := state.OpenMemory(ctx, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	m, err := s.Meta(ctx)
	if err != nil || m.Lineage != "" || m.Serial != 0 || m.SchemaVersion != state.SchemaVersion {
		t.Fatalf("Meta = %+v, %v", m, err)
	}
	if err := state.CheckLineage(s, ""); err != nil {
		t.Errorf("CheckLineage(empty) = %v", err)
	}
	mustTx(t, s, func(tx state.Tx) error {
		return tx.PutResource(state.Resource{Addr: "key.a", Type: "key", Name: "a", Status: state.StatusReady})
	})
	if r, err := s.Resource(ctx, "key.a"); r == nil || err != nil {
		t.Errorf("read back = %v, %v", r, err)
	}
	if rs, err := other.Resources(ctx); len(rs) != 0 || err != nil {
		t.Errorf("two memory states share data: %v, %v", rs, err)
	}
	if ok, err := s.IntegrityCheck(ctx); ok != "ok" || err != nil {
		t.Errorf("IntegrityCheck = %q, %v", ok, err)
	}
}

// Two stores on one file (as two processes would be) writing at once: every
// transaction lands and bumps the serial once, none fails on SQLITE_BUSY.
func TestConcurrentWriters(t *testing.T) {
	a := statetest.New(t)
	b := statetest.Open(t, a.Path(), state.Options{})
	const n = 20
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	for w, s := range []*state.SQLite{a, b} {
		wg.Go(func() {
			for i := range n {
				errs <- s.Tx(ctx, func(tx state.Tx) error {
					return tx.PutListing(state.Listing{Source: "emis_site.x", Name: fmt.Sprintf("w%d-%d", w, i)})
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := serial(t, a); got != 2*n {
		t.Errorf("serial = %d, want %d", got, 2*n)
	}
	if ls, _ := b.Listings(ctx, "emis_site.x"); len(ls) != 2*n {
		t.Errorf("%d listings, want %d", len(ls), 2*n)
	}
}

// TestResourceHeads: every resource's address, type and status, with
// attributes only for the types asked for.
func TestResourceHeads(t *testing.T) {
	s := statetest.New(t)
	mustTx(t, s, func(tx state.Tx) error {
		for _, r := range []state.Resource{
			{Addr: "organisation.a", Type: "organisation", Name: "a", Status: state.StatusReady, Attrs: []byte(`{"ods":"A81001"}`)},
			{Addr: "key.k", Type: "key", Name: "k", Status: state.StatusTainted, Attrs: []byte(`{"fingerprint":"F"}`)},
			{Addr: "dataset.d", Type: "dataset", Name: "d", Status: state.StatusReady, Attrs: []byte(`{"tables":[]}`)},
		} {
			if err := tx.PutResource(r); err != nil {
				return err
			}
		}
		return nil
	})
	heads := func(types ...string) string {
		rs, err := s.ResourceHeads(ctx, types...)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s %s %s %s", r.Addr, r.Type, r.Status, r.Attrs))
		}
		return strings.Join(out, "; ")
	}
	for _, tc := range []struct {
		types []string
		want  string
	}{
		{nil, "dataset.d dataset ready ; key.k key tainted ; organisation.a organisation ready "},
		{[]string{"organisation"}, `dataset.d dataset ready ; key.k key tainted ; organisation.a organisation ready {"ods":"A81001"}`},
		{[]string{"key", "organisation"}, `dataset.d dataset ready ; key.k key tainted {"fingerprint":"F"}; organisation.a organisation ready {"ods":"A81001"}`},
	} {
		if got := heads(tc.types...); got != tc.want {
			t.Errorf("ResourceHeads(%q):\n got %s\nwant %s", tc.types, got, tc.want)
		}
		// The same from what Resources read just before.
		if _, err := s.Resources(ctx); err != nil {
			t.Fatal(err)
		}
		if got := heads(tc.types...); got != tc.want {
			t.Errorf("ResourceHeads(%q) after Resources:\n got %s\nwant %s", tc.types, got, tc.want)
		}
	}
	// A commit after Resources is seen.
	if _, err := s.Resources(ctx); err != nil {
		t.Fatal(err)
	}
	mustTx(t, s, func(tx state.Tx) error {
		return tx.PutResource(state.Resource{Addr: "key.k", Type: "key", Name: "k", Status: state.StatusReady, Attrs: []byte(`{"fingerprint":"G"}`)})
	})
	if got, want := heads("key"), `dataset.d dataset ready ; key.k key ready {"fingerprint":"G"}; organisation.a organisation ready `; got != want {
		t.Errorf("ResourceHeads after a commit:\n got %s\nwant %s", got, want)
	}
}
