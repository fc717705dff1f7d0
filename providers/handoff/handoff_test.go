package handoff

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteListAck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "emis", "central")
	t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	p, err := Write(dir, ReextractRequest, "core-2026-11-21", "extract.core", t0, map[string]any{"day": "2026-11-21"}, ".md", []byte("# request\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "reextract_request-core-2026-11-21.md")); err != nil {
		t.Errorf("twin missing: %v", err)
	}
	if _, err := Write(dir, ReextractRequest, "core-2026-11-20", "extract.core", t0.Add(-time.Hour), map[string]any{"day": "2026-11-20"}, "", nil); err != nil {
		t.Fatal(err)
	}
	docs, err := List(dir, ReextractRequest)
	if err != nil || len(docs) != 2 || docs[0].ID != "core-2026-11-20" || docs[1].Source != "extract.core" {
		t.Fatalf("list %+v %v (%s)", docs, err, p)
	}
	open, err := OpenRequests(dir)
	if err != nil || len(open) != 2 {
		t.Fatalf("open %+v %v", open, err)
	}
	if err := WriteAck(dir, ReextractRequest, "core-2026-11-20", Ack{Status: "done", Time: t0, FullBatch: "2026-11-21T02.15.00"}); err != nil {
		t.Fatal(err)
	}
	open, _ = OpenRequests(dir)
	if len(open) != 1 || open[0].Day.Format(time.DateOnly) != "2026-11-21" {
		t.Errorf("open after ack %+v", open)
	}
	full, err := FullBatches(dir)
	if err != nil || !full["2026-11-21T02.15.00"] {
		t.Errorf("full batches %v %v", full, err)
	}
	// A future version or a foreign file is left alone, not misread.
	os.WriteFile(filepath.Join(dir, "reextract_request-x.json"), []byte(`{"version":2,"kind":"reextract_request"}`), 0o640)
	if docs, _ := List(dir, ReextractRequest); len(docs) != 2 {
		t.Errorf("read a document of another version: %d", len(docs))
	}
}

func TestIDsArePlainNames(t *testing.T) {
	for _, id := range []string{"../x", "a/b", `a\b`, ".."} {
		if _, err := Write(t.TempDir(), PublicKey, id, "s", time.Now(), nil, "", nil); err == nil {
			t.Errorf("accepted id %q", id)
		}
		if err := WriteAck(t.TempDir(), PublicKey, id, Ack{}); err == nil {
			t.Errorf("ack accepted id %q", id)
		}
	}
}
