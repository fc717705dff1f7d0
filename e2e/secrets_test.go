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
	"testing"

	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/pgpkey"
	"github.com/im1dev/im1/reconcile"
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
