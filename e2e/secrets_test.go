package e2e

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/pgpkey"
	"github.com/im1dev/im1/reconcile"
	"github.com/im1dev/im1/state"
)

// Secret hygiene beyond the passphrase: the private key's secret exponent
// (and its hex and base64 forms) appears in no file im1 wrote — the state
// database and its WAL, a saved plan, the handoff, landing and archive
// directories — and the passphrase neither.
func TestNoKeyMaterialInClear(t *testing.T) {
	w := newWorld(t, emissim.TransportFaults{})
	w.keyExtra = `algorithm = "rsa3072"`
	w.rawConfig = ""
	cfg := w.config()
	cfg = string(bytes.Replace([]byte(cfg), []byte(`algorithm      = "curve25519"`), nil, 1))
	w.rawConfig = cfg
	w.now = at("2026-11-20", 9, 0)
	w.mustApply()
	w.supplier.Deliver(at("2026-11-20", 2, 15), emissim.Faults{})
	w.mustApply()
	e := w.engine()
	if err := e.OpenState(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	p, diags := e.Plan(context.Background())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if err := reconcile.WritePlanFile(filepath.Join(w.dir, "saved.plan"), p.Document()); err != nil {
		t.Fatal(err)
	}
	r, err := e.Store().Resource(context.Background(), "key.emis")
	if err != nil || r == nil {
		t.Fatalf("key in state: %v", err)
	}
	e.Close()
	m, err := pgpkey.UnmarshalMaterial(r.Private)
	if err != nil {
		t.Fatal(err)
	}
	ent, err := pgpkey.Unlock(m.Current.Protected, []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := ent.PrivateKey.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("not an RSA key: %T", ent.PrivateKey.PrivateKey)
	}
	d := rk.D.Bytes()[:48]
	secrets := map[string][]byte{
		"secret exponent":        d,
		"secret exponent hex":    []byte(hex.EncodeToString(d)),
		"secret exponent HEX":    bytes.ToUpper([]byte(hex.EncodeToString(d))),
		"secret exponent base64": []byte(base64.StdEncoding.EncodeToString(d)[:40]),
		"passphrase":             []byte(passphrase),
	}
	files := 0
	filepath.WalkDir(w.dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || filepath.Base(filepath.Dir(p)) == "secrets" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		files++
		for what, s := range secrets {
			if bytes.Contains(b, s) {
				t.Errorf("%s found in %s", what, p)
			}
		}
		return nil
	})
	if files < 10 {
		t.Fatalf("only %d files searched", files)
	}
}

// A wrong or missing passphrase at apply stops the fetch with an error
// that names the variable and never its value, lands nothing, and the
// next apply with the right one converges. Nothing is fetched with a key
// that cannot be unlocked.
func TestApplyWrongPassphrase(t *testing.T) {
	w := deliveredOnce(t, emissim.TransportFaults{})
	for _, tc := range []struct{ pass, want string }{
		{"not the passphrase 91c2", "unlocking with IM1_KEY_PASSPHRASE"},
		{"", "environment variable IM1_KEY_PASSPHRASE is empty"},
	} {
		w.pass = &tc.pass
		var text strings.Builder
		for _, d := range w.apply() {
			if d.Severity == hcl.DiagError {
				text.WriteString(d.Summary + ": " + d.Detail + "\n")
			}
		}
		got := text.String()
		if !strings.Contains(got, "unlocking the recipient keys") || !strings.Contains(got, tc.want) {
			t.Errorf("passphrase %q: errors %q, want %q", tc.pass, got, tc.want)
		}
		if tc.pass != "" && strings.Contains(got, tc.pass) {
			t.Errorf("the error shows the passphrase: %q", got)
		}
		if ds := w.deliveries(); len(ds) != 0 {
			t.Errorf("passphrase %q: deliveries %+v, want none", tc.pass, ds)
		}
		if files := w.landedFiles(); len(files) != 0 {
			t.Errorf("passphrase %q: landed %v", tc.pass, files)
		}
		if arch, _ := filepath.Glob(filepath.Join(w.dir, "archive", "*", "*", "*", "*")); len(arch) != 0 {
			t.Errorf("passphrase %q: fetched %v", tc.pass, arch)
		}
	}
	w.pass = nil
	w.mustApply()
	if ds := w.deliveries(); len(ds) != 1 || ds[0].Status != state.DeliveryLanded {
		t.Fatalf("after the right passphrase: deliveries %+v", ds)
	}
	// The archive check above looks where fetched files go.
	if arch, _ := filepath.Glob(filepath.Join(w.dir, "archive", "*", "*", "*", "*")); len(arch) == 0 {
		t.Error("nothing archived where the test looks for fetched files")
	}
}

// An apply starts unlocking the recipient keys before it dials the site,
// so the S2K (50-80 ms of CPU) runs while the SSH handshake waits on
// the network; a plan never unlocks them, so it needs no passphrase.
func TestApplyUnlocksKeysBeforeDialling(t *testing.T) {
	w := deliveredOnce(t, emissim.TransportFaults{})
	var mu sync.Mutex
	var reads []int // connections the site had accepted at each passphrase read
	w.onGetenv = func(k string) {
		if k == "IM1_KEY_PASSPHRASE" {
			mu.Lock()
			reads = append(reads, w.srv.Connections())
			mu.Unlock()
		}
	}
	if inst := instances(w.plan(), "extract.core"); inst["2026-11-20"].Action != providers.Fetch {
		t.Fatalf("want a fetch planned, got %+v", inst)
	}
	mu.Lock()
	if len(reads) != 0 {
		t.Errorf("a plan read the key passphrase %d time(s)", len(reads))
	}
	reads = nil
	mu.Unlock()
	before := w.srv.Connections()
	w.mustApply()
	mu.Lock()
	defer mu.Unlock()
	if len(reads) == 0 || reads[0] != before {
		t.Errorf("passphrase reads at site connection counts %v, want the first before this apply's connection (%d)", reads, before)
	}
	if got := w.srv.Connections(); got != before+1 {
		t.Errorf("the apply made %d connections, want 1", got-before)
	}
	if ds := w.deliveries(); len(ds) != 1 || ds[0].Status != state.DeliveryLanded {
		t.Fatalf("deliveries %+v", ds)
	}
}
