package pgpkey_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/pgpkey"
	"github.com/im1dev/im1/state"
)

const testPass = "correct horse battery staple 2026"

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

type fixture struct {
	t     *testing.T
	r     *pgpkey.Resource
	env   *providers.Env
	now   time.Time
	vars  map[string]string
	prior *providers.Prior
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, r: &pgpkey.Resource{}, now: t0, vars: map[string]string{"IM1_KEY_PASSPHRASE": testPass}}
	f.env = &providers.Env{
		Now:    func() time.Time { return f.now },
		Zone:   time.UTC,
		Dirs:   providers.Dirs{Handoff: t.TempDir()},
		Getenv: func(k string) string { return f.vars[k] },
	}
	return f
}

// config is a decoded `key` block with defaults applied, as config gives it.
func config(over map[string]string) cty.Value {
	m := map[string]cty.Value{
		"address":        cty.StringVal("key.emis_2026"),
		"algorithm":      cty.StringVal("curve25519"),
		"valid_for":      cty.StringVal("730d"),
		"rotate_before":  cty.StringVal("30d"),
		"retire_after":   cty.StringVal("30d"),
		"passphrase_env": cty.StringVal("IM1_KEY_PASSPHRASE"),
		"name":           cty.StringVal("im1"),
		"email":          cty.NullVal(cty.String),
	}
	for k, v := range over {
		m[k] = cty.StringVal(v)
	}
	for _, a := range (&pgpkey.Resource{}).Schema().Attributes {
		if a.Computed {
			m[a.Name] = cty.NullVal(a.Type)
		}
	}
	return cty.ObjectVal(m)
}

func (f *fixture) plan(cfg cty.Value) *providers.PlanResponse {
	f.t.Helper()
	resp, err := f.r.Plan(context.Background(), &providers.PlanRequest{Addr: "key.emis_2026", Config: cfg, Prior: f.prior, Env: f.env})
	if err != nil {
		f.t.Fatal(err)
	}
	if resp.Diagnostics.HasErrors() {
		f.t.Fatal(resp.Diagnostics.Error())
	}
	return resp
}

func (f *fixture) apply(cfg cty.Value, plan *providers.PlanResponse) (*providers.ApplyResponse, error) {
	return f.r.Apply(context.Background(), &providers.ApplyRequest{Addr: "key.emis_2026", Config: cfg, Prior: f.prior, Planned: plan, Env: f.env})
}

// step plans, checks the action and reason, applies and keeps the state.
func (f *fixture) step(cfg cty.Value, want providers.Action, reason string) *providers.PlanResponse {
	f.t.Helper()
	p := f.plan(cfg)
	if p.Action != want || !strings.Contains(p.Reason, reason) {
		f.t.Fatalf("plan %s (%q), want %s containing %q", p.Action, p.Reason, want, reason)
	}
	resp, err := f.apply(cfg, p)
	if err != nil {
		f.t.Fatal(err)
	}
	f.prior = resp.State
	return p
}

func (f *fixture) material() *pgpkey.Material {
	f.t.Helper()
	m, err := pgpkey.UnmarshalMaterial(f.prior.Private)
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

func attrString(v cty.Value, name string) string { return v.GetAttr(name).AsString() }

func TestResourceLifecycle(t *testing.T) {
	f := newFixture(t)
	cfg := config(nil)

	// Create: computed values are known only after apply.
	p := f.step(cfg, providers.Create, "not in state")
	if p.Planned.GetAttr("fingerprint").IsKnown() {
		t.Error("planned fingerprint should be unknown")
	}
	if f.prior.Status != state.StatusReady {
		t.Errorf("status %q", f.prior.Status)
	}
	first := f.material().Current
	if got := attrString(f.prior.Value, "fingerprint"); got != first.Fingerprint || len(got) != 40 {
		t.Errorf("fingerprint attr %q", got)
	}
	if got := attrString(f.prior.Value, "expires"); got != "2028-11-28T10:00:00Z" {
		t.Errorf("expires %s", got)
	}
	if attrString(f.prior.Value, "address") != "key.emis_2026" {
		t.Error("extra config attributes must be kept")
	}
	checkHandoff(t, f.env.Dirs.Handoff, first)
	if strings.Contains(string(f.prior.Private), testPass) {
		t.Error("passphrase in state")
	}

	// Encrypted to the first key, to decrypt after rotation.
	old, err := pgpkey.ParsePublic(first.PublicArmored)
	if err != nil {
		t.Fatal(err)
	}
	msg := encrypt(t, []byte("before rotation"), openpgp.EntityList{old}, pgpkey.EncryptOptions{Now: f.now})

	// No-op until the rotation window.
	f.now = first.Expires.Add(-31 * 24 * time.Hour)
	f.step(cfg, providers.NoOp, "")

	// Rotate inside the window.
	f.now = first.Expires.Add(-10 * 24 * time.Hour)
	f.step(cfg, providers.Rotate, "expires 2028-11-28, within the 30d rotation window")
	m := f.material()
	if m.Current.Fingerprint == first.Fingerprint || len(m.Previous) != 1 || m.Previous[0].Fingerprint != first.Fingerprint {
		t.Fatalf("after rotation: current %s, previous %v", m.Current.Fingerprint, m.PreviousFingerprints())
	}
	if l := f.prior.Value.GetAttr("previous_fingerprints"); l.LengthInt() != 1 || l.Index(cty.NumberIntVal(0)).AsString() != first.Fingerprint {
		t.Errorf("previous_fingerprints %#v", l)
	}
	checkHandoff(t, f.env.Dirs.Handoff, m.Current)
	keys, err := m.DecryptionKeys([]byte(testPass))
	if err != nil {
		t.Fatal(err)
	}
	got, pt, err := decryptAll(msg, pgpkey.DecryptOptions{Keys: keys})
	if err != nil || string(got) != "before rotation" || pt.KeyFingerprint != first.Fingerprint {
		t.Fatalf("predecessor decrypt: %q %v", got, err)
	}
	f.step(cfg, providers.NoOp, "")

	// The predecessor retires retire_after after the rotation.
	f.now = f.now.Add(29 * 24 * time.Hour)
	f.step(cfg, providers.NoOp, "")
	f.now = f.now.Add(2 * 24 * time.Hour)
	f.step(cfg, providers.Update, "retires predecessor "+first.Fingerprint)
	if m := f.material(); len(m.Previous) != 0 || f.prior.Value.GetAttr("previous_fingerprints").LengthInt() != 0 {
		t.Fatalf("predecessor not retired: %v", m.PreviousFingerprints())
	}

	// Other settings update in place.
	cur := f.material().Current.Fingerprint
	f.step(config(map[string]string{"valid_for": "52w"}), providers.Update, `valid_for changes from "730d" to "52w"`)
	if f.material().Current.Fingerprint != cur {
		t.Error("update must keep the key")
	}

	// Changing the algorithm replaces the key (the old one kept for decryption).
	cfg = config(map[string]string{"valid_for": "52w", "algorithm": "rsa3072"})
	f.step(cfg, providers.Replace, "algorithm changes from curve25519 to rsa3072")
	if m := f.material(); m.Current.Algorithm != pgpkey.RSA3072 || len(m.Previous) != 1 {
		t.Fatalf("after replace: %s, %d previous", m.Current.Algorithm, len(m.Previous))
	}

	// Expired keys rotate too.
	f.now = f.material().Current.Expires.Add(time.Hour)
	f.step(cfg, providers.Rotate, "expired ")

	// Gone from configuration: destroy.
	f.step(cty.NilVal, providers.Destroy, "no longer declared; private key material will be deleted from state")
	if f.prior != nil {
		t.Fatal("destroy must drop state")
	}
}

func checkHandoff(t *testing.T, dir string, k *pgpkey.Key) {
	t.Helper()
	p := pgpkey.HandoffPath(dir, "key.emis_2026", k.Fingerprint)
	if p != filepath.Join(dir, "keys", "emis_2026", "public_key-"+k.Fingerprint+".json") {
		t.Fatalf("handoff path %s", p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version int
		Kind    string
		Created string
		Payload struct{ Key, Fingerprint, Algorithm, Expires, Armored string }
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != 1 || doc.Kind != "public_key" || doc.Payload.Key != "emis_2026" || doc.Payload.Fingerprint != k.Fingerprint ||
		doc.Payload.Armored != k.PublicArmored || doc.Payload.Expires != k.Expires.Format(time.RFC3339) || doc.Payload.Algorithm != string(k.Algorithm) {
		t.Errorf("handoff document %s", b)
	}
	if asc, err := os.ReadFile(strings.TrimSuffix(p, ".json") + ".asc"); err != nil || string(asc) != k.PublicArmored {
		t.Errorf(".asc twin: %v", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*"))
	if len(tmps) > 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
}

func TestResourceApplyErrors(t *testing.T) {
	f := newFixture(t)
	f.vars["IM1_KEY_PASSPHRASE"] = ""
	cfg := config(nil)
	_, err := f.apply(cfg, f.plan(cfg))
	if err == nil || err.Error() != "environment variable IM1_KEY_PASSPHRASE is empty; it must hold the passphrase that protects the private keys" {
		t.Fatalf("empty env: %v", err)
	}

	f.vars["IM1_KEY_PASSPHRASE"] = testPass
	f.step(cfg, providers.Create, "")

	// A different passphrase cannot join the key's material.
	const wrong = "a different secret passphrase"
	f.vars["OTHER_PASS"] = wrong
	cfg2 := config(map[string]string{"passphrase_env": "OTHER_PASS"})
	p := f.plan(cfg2)
	if p.Action != providers.Update {
		t.Fatalf("plan %s", p.Action)
	}
	_, err = f.apply(cfg2, p)
	if err == nil || !strings.Contains(err.Error(), "does not unlock key") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	f.now = f.now.Add(720 * 24 * time.Hour)
	_, err = f.apply(cfg2, f.plan(cfg2))
	if err == nil || !strings.Contains(err.Error(), "does not unlock key") {
		t.Fatalf("rotation with wrong passphrase: %v", err)
	}
	for _, s := range []string{testPass, wrong} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error reveals a passphrase: %v", err)
		}
	}
}

func TestResourcePlanRejectsBadSettings(t *testing.T) {
	f := newFixture(t)
	for _, over := range []map[string]string{
		{"valid_for": "forever"},
		{"rotate_before": "800d"},
		{"algorithm": "dsa1024"},
		{"passphrase_env": "not a name"},
	} {
		resp, err := f.r.Plan(context.Background(), &providers.PlanRequest{Addr: "key.k", Config: config(over), Env: f.env})
		if err != nil || !resp.Diagnostics.HasErrors() {
			t.Errorf("%v: want a diagnostic, got %v %v", over, err, resp.Diagnostics)
		}
	}
}

func TestSchemaChecks(t *testing.T) {
	s := (&pgpkey.Resource{}).Schema()
	for name, bad := range map[string]string{"algorithm": "rsa1024", "valid_for": "0d", "rotate_before": "x", "passphrase_env": "$X"} {
		if err := s.Attribute(name).Check(cty.StringVal(bad)); err == nil {
			t.Errorf("%s accepts %q", name, bad)
		}
	}
	if !s.Attribute("algorithm").ForceNew || !s.Attribute("passphrase_env").Required {
		t.Error("algorithm must force new; passphrase_env is required")
	}
}
