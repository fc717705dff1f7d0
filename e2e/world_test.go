// Package e2e holds end-to-end tests: the real engine and providers against
// the simulators, real OpenSSH sshd and real gpg, with a fixed clock.
package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/crypto/ssh"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/registry"
	"github.com/im1dev/im1/reconcile"
	"github.com/im1dev/im1/state"
)

const (
	passphrase = "e2e passphrase: not a real secret 7f3a"
	agreement  = "45E7CD20-EE37-41AB-90D6-DC9D4B03D102"
)

var orgs = []emissim.Org{
	{GUID: "0B6E2C4A-1111-4A11-8A11-000000000001", ODS: "A81001", Name: "Densham Surgery"},
	{GUID: "0B6E2C4A-2222-4A22-8A22-000000000002", ODS: "A81002", Name: "Queens Park Medical Centre"},
}

// world is a configuration directory, an EMIS simulator serving a site
// directory, and the supplier that fills it.
type world struct {
	t          *testing.T
	dir        string
	siteDir    string
	srv        *emissim.Server
	supplier   *emissim.Supplier
	now        time.Time
	hostKey    string
	remoteDir  string
	senderKey  string
	keyExtra   string
	retention  string
	siteExtra  string // more emis_site attributes, each on its own line
	purge      bool
	noRefresh  bool
	rawConfig  string // when set, used instead of config()
	hostSigner ssh.Signer
	clientPub  ssh.PublicKey
	port       int
	keyFile    string
	user       string
	extra      string // appended configuration
	tables     string
	pass       *string // when set, IM1_KEY_PASSPHRASE holds this instead
	// onGetenv, when set, sees every environment variable the engine
	// reads (from any goroutine) before it is answered.
	onGetenv func(string)
}

func newWorld(t *testing.T, faults emissim.TransportFaults) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), now: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC), remoteDir: "."}
	w.siteDir = filepath.Join(w.dir, "site")
	if err := os.MkdirAll(w.siteDir, 0o750); err != nil {
		t.Fatal(err)
	}
	w.keyFile = filepath.Join(w.dir, "secrets", "sftp_ed25519")
	if err := os.MkdirAll(filepath.Dir(w.keyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	pub, err := emissim.GenerateClientKey(w.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	w.clientPub = pub
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	if w.hostSigner, err = ssh.NewSignerFromKey(priv); err != nil {
		t.Fatal(err)
	}
	w.srv, err = emissim.StartServer(ctx, emissim.ServerConfig{Dir: w.siteDir, HostKey: w.hostSigner, AuthorizedKeys: []ssh.PublicKey{pub}, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.srv.Close() })
	w.hostKey = emissim.AuthorizedKeyLine(w.srv.HostKey())
	w.port = w.srv.Port()
	w.user = w.srv.User()
	w.tables = `["Admin_Patient", "CareRecord_Observation"]`
	w.supplier = &emissim.Supplier{
		Dir: w.siteDir, HandoffDir: filepath.Join(w.dir, "handoff"), SiteDir: "central",
		StateFile: filepath.Join(w.dir, "supplier", "state.json"), Agreement: agreement,
		Orgs: orgs, Tables: []string{"Admin_Patient", "CareRecord_Observation"}, Patients: 5, Seed: 42,
	}
	return w
}

// restart serves the same site and host key with other transport faults.
func (w *world) restart(faults emissim.TransportFaults) {
	w.t.Helper()
	pub := w.clientPub
	ctx, cancel := context.WithCancel(context.Background())
	w.t.Cleanup(cancel)
	var err error
	w.srv, err = emissim.StartServer(ctx, emissim.ServerConfig{Dir: w.siteDir, HostKey: w.hostSigner, AuthorizedKeys: []ssh.PublicKey{pub}, Faults: faults})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { w.srv.Close() })
	w.port = w.srv.Port()
}

func (w *world) config() string {
	return fmt.Sprintf(`
organisation "A81001" {
  name     = "Densham Surgery"
  supplier = "emis"
}
organisation "A81002" {
  name     = "Queens Park Medical Centre"
  supplier = "emis"
}
key "emis" {
  algorithm      = "curve25519"
  passphrase_env = "IM1_KEY_PASSPHRASE"
  %s
}
emis_site "central" {
  host              = "127.0.0.1"
  port              = %d
  user              = %q
  host_key          = %q
  auth_key_file     = %q
  sharing_agreement = %q
  organisations     = [organisation.A81001.ods, organisation.A81002.ods]
  recipient_keys    = [key.emis.fingerprint]
  remote_dir        = %q
  stable_after      = "0s"%s
  idle_timeout      = "5s"
}
dataset "core" {
  tables      = %s
  ig_approval = "IG-2026-014"
}
schedule "daily" {
  frequency = "daily"
  start     = "2026-11-20"
  lateness  = "36h"%s
}
extract "core" {
  source   = emis_site.central
  dataset  = dataset.core
  schedule = schedule.daily
}
%s`, w.keyExtra, w.port, w.user, w.hostKey, w.keyFile, agreement, w.remoteDir, w.senderLine(), w.tables, w.retentionLine(), w.extra)
}

func (w *world) engine() *reconcile.Engine {
	w.t.Helper()
	return w.engineFor("")
}

// engineFor loads the configuration for the operation op ("apply" lets
// providers start apply-only work while planning, as `im1 apply` does).
func (w *world) engineFor(op string) *reconcile.Engine {
	w.t.Helper()
	cfg := w.rawConfig
	if cfg == "" {
		cfg = w.config()
	}
	if err := os.WriteFile(filepath.Join(w.dir, "main.im1.hcl"), []byte(cfg), 0o640); err != nil {
		w.t.Fatal(err)
	}
	now := w.now
	e, diags := reconcile.Load(reconcile.Options{
		Dir: w.dir, Registry: registry.New(), Now: func() time.Time { return now }, PurgeWithdrawn: w.purge, NoRefresh: w.noRefresh, Operation: op,
		Getenv: func(k string) string {
			if w.onGetenv != nil {
				w.onGetenv(k)
			}
			if k == "IM1_KEY_PASSPHRASE" && w.pass != nil {
				return *w.pass
			}
			if k == "IM1_KEY_PASSPHRASE" {
				return passphrase
			}
			return ""
		},
	})
	if diags.HasErrors() {
		w.t.Fatalf("load: %s", diags.Error())
	}
	return e
}

// plan returns the plan; errors fail the test.
func (w *world) plan() *reconcile.Plan {
	w.t.Helper()
	e := w.engine()
	defer e.Close()
	if err := e.OpenState(context.Background(), false); err != nil {
		w.t.Fatal(err)
	}
	p, diags := e.Plan(context.Background())
	if diags.HasErrors() {
		w.t.Fatalf("plan: %s", diags.Error())
	}
	return p
}

// apply plans and applies, returning apply's diagnostics.
func (w *world) apply() hcl.Diagnostics {
	w.t.Helper()
	ctx := context.Background()
	e := w.engineFor("apply")
	defer e.Close()
	if err := e.OpenState(ctx, true); err != nil {
		w.t.Fatal(err)
	}
	id, err := e.Lock(ctx, "apply")
	if err != nil {
		w.t.Fatal(err)
	}
	defer e.Unlock(ctx, id)
	p, diags := e.Plan(ctx)
	if diags.HasErrors() {
		w.t.Fatalf("plan: %s", diags.Error())
	}
	_, ad := e.Apply(ctx, p, "e2e", nil)
	return append(diags, ad...)
}

func (w *world) mustApply() {
	w.t.Helper()
	if d := w.apply(); d.HasErrors() {
		var b strings.Builder
		for _, x := range d {
			if x.Severity == hcl.DiagError {
				b.WriteString(x.Summary + ": " + x.Detail + "\n")
			}
		}
		w.t.Fatalf("apply: %s", b.String())
	}
}

// store opens state read-only for assertions.
func (w *world) store() *state.SQLite {
	w.t.Helper()
	s, err := state.OpenSQLite(context.Background(), filepath.Join(w.dir, ".im1", "state.db"), state.Options{ReadOnly: true})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { s.Close() })
	return s
}

func (w *world) deliveries() []state.Delivery {
	w.t.Helper()
	ds, err := w.store().Deliveries(context.Background(), "extract.core")
	if err != nil {
		w.t.Fatal(err)
	}
	return ds
}

// instances returns the extract's instance actions by key.
// A run of periods is listed under each of its keys.
func instances(p *reconcile.Plan, addr string) map[string]providers.InstanceChange {
	out := map[string]providers.InstanceChange{}
	for _, c := range p.Changes {
		if c.Addr == addr {
			for _, ic := range c.Instances {
				for _, k := range runKeys(ic) {
					out[k] = ic
				}
			}
		}
	}
	return out
}

// runKeys lists the period keys a run stands for; the step (a day, a week
// or a month) is what spans Key to Through in Count-1 steps.
func runKeys(ic providers.InstanceChange) []string {
	if ic.N() == 1 {
		return []string{ic.Key}
	}
	from, err1 := time.Parse(time.DateOnly, ic.Key)
	to, err2 := time.Parse(time.DateOnly, ic.Through)
	if err1 != nil || err2 != nil {
		panic("bad run " + ic.Key + ".." + ic.Through)
	}
	step := func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
	switch days := int(to.Sub(from).Hours()/24 + 0.5); days {
	case ic.Count - 1:
		step = func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
	case 7 * (ic.Count - 1):
		step = func(t time.Time) time.Time { return t.AddDate(0, 0, 7) }
	}
	var keys []string
	for t := from; len(keys) < ic.Count; t = step(t) {
		keys = append(keys, t.Format(time.DateOnly))
	}
	if keys[len(keys)-1] != ic.Through {
		panic(fmt.Sprintf("run %s..%s of %d does not step evenly", ic.Key, ic.Through, ic.Count))
	}
	return keys
}

func driftText(p *reconcile.Plan) string {
	var b strings.Builder
	for _, d := range p.Drift {
		b.WriteString(d.Summary + "\n")
	}
	return b.String()
}

// landedFiles lists files under the landing root (relative), excluding none.
func (w *world) landedFiles() []string {
	var out []string
	root := filepath.Join(w.dir, "landing")
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func (w *world) senderLine() string {
	out := w.siteExtra
	if w.senderKey != "" {
		out += fmt.Sprintf("\n  sender_key_file   = %q", w.senderKey)
	}
	return out
}

func (w *world) retentionLine() string {
	if w.retention == "" {
		return ""
	}
	return fmt.Sprintf("\n  retention = %q", w.retention)
}
