package pgpkey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/schema"
	"github.com/im1dev/im1/state"
)

// Resource is the `key` block: an OpenPGP key pair that apply generates,
// rotates before expiry, and hands to suppliers through the handoff
// directory. The private keys live only in state, S2K-protected.
type Resource struct {
	providers.NoRefresh
}

var _ providers.Resource = (*Resource)(nil)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func checkDuration(v cty.Value) error {
	_, err := ParseDuration(v.AsString())
	return err
}

var keySchema = &schema.Block{
	Doc: "An OpenPGP key pair suppliers encrypt extracts to; apply generates it, rotates it before expiry and writes the public key to the handoff directory.",
	Attributes: []*schema.Attribute{
		{Name: "algorithm", Type: cty.String, Default: cty.StringVal(string(DefaultAlgorithm)), ForceNew: true,
			Doc: "Key type: rsa4096 (default, widest supplier support), rsa3072, or curve25519 (EdDSA + ECDH cv25519). All are v4 keys.",
			Check: func(v cty.Value) error {
				if !Algorithm(v.AsString()).Valid() {
					return fmt.Errorf("algorithm %q is not one of %s", v.AsString(), algorithmList())
				}
				return nil
			}},
		{Name: "valid_for", Type: cty.String, Default: cty.StringVal("730d"), Check: checkDuration,
			Doc: "Lifetime of each generated key, e.g. 730d, 52w or 8760h."},
		{Name: "rotate_before", Type: cty.String, Default: cty.StringVal("30d"), Check: checkDuration,
			Doc: "Rotation window: plan rotates the key once now is within this long of its expiry."},
		{Name: "retire_after", Type: cty.String, Default: cty.StringVal("30d"), Check: checkDuration,
			Doc: "How long a superseded key stays available for decryption after rotation."},
		{Name: "passphrase_env", Type: cty.String, Required: true,
			Doc: "Name of the environment variable holding the passphrase that protects the private keys (never the passphrase itself).",
			Check: func(v cty.Value) error {
				if !envName.MatchString(v.AsString()) {
					return fmt.Errorf("%q is not an environment variable name", v.AsString())
				}
				return nil
			}},
		{Name: "name", Type: cty.String, Default: cty.StringVal("im1"), Doc: "Name part of the key's user ID."},
		{Name: "email", Type: cty.String, Doc: "Email part of the key's user ID (optional)."},
		{Name: "fingerprint", Type: cty.String, Computed: true, Doc: "Fingerprint of the current key (40 hex digits)."},
		{Name: "key_id", Type: cty.String, Computed: true, Doc: "Key ID of the current key (16 hex digits)."},
		{Name: "created", Type: cty.String, Computed: true, Doc: "Creation time of the current key (RFC 3339)."},
		{Name: "expires", Type: cty.String, Computed: true, Doc: "Expiry time of the current key (RFC 3339)."},
		{Name: "public_key", Type: cty.String, Computed: true, Doc: "ASCII-armoured public key of the current key."},
		{Name: "previous_fingerprints", Type: cty.List(cty.String), Computed: true,
			Doc: "Fingerprints of superseded keys still kept for decryption, newest first."},
	},
}

// userAttrs are the configurable attributes other than algorithm.
var userAttrs = []string{"valid_for", "rotate_before", "retire_after", "passphrase_env", "name", "email"}

// Schema returns the `key` block schema.
func (*Resource) Schema() *schema.Block { return keySchema }

// settings is a decoded configuration.
type settings struct {
	alg                                  Algorithm
	validFor, rotateBefore, retireAfter  time.Duration
	validForS, rotateBeforeS, retireAftS string
	passEnv, name, email                 string
}

func attr(v cty.Value, name string) cty.Value {
	if v == cty.NilVal || v.IsNull() || !v.IsKnown() || !v.Type().IsObjectType() || !v.Type().HasAttribute(name) {
		return cty.NullVal(cty.String)
	}
	return v.GetAttr(name)
}

func str(v cty.Value, name, def string) string {
	a := attr(v, name)
	if a.IsNull() || !a.IsKnown() || a.Type() != cty.String {
		return def
	}
	return a.AsString()
}

func decodeSettings(v cty.Value) (*settings, error) {
	s := &settings{
		alg:           Algorithm(str(v, "algorithm", string(DefaultAlgorithm))),
		validForS:     str(v, "valid_for", "730d"),
		rotateBeforeS: str(v, "rotate_before", "30d"),
		retireAftS:    str(v, "retire_after", "30d"),
		passEnv:       str(v, "passphrase_env", ""),
		name:          str(v, "name", "im1"),
		email:         str(v, "email", ""),
	}
	if !s.alg.Valid() {
		return nil, fmt.Errorf("algorithm %q is not one of %s", s.alg, algorithmList())
	}
	var err error
	for _, d := range []struct {
		dst *time.Duration
		src string
	}{{&s.validFor, s.validForS}, {&s.rotateBefore, s.rotateBeforeS}, {&s.retireAfter, s.retireAftS}} {
		if *d.dst, err = ParseDuration(d.src); err != nil {
			return nil, err
		}
	}
	if s.rotateBefore >= s.validFor {
		return nil, fmt.Errorf("rotate_before (%s) must be shorter than valid_for (%s), or every plan would rotate", s.rotateBeforeS, s.validForS)
	}
	if !envName.MatchString(s.passEnv) {
		return nil, fmt.Errorf("passphrase_env %q is not an environment variable name", s.passEnv)
	}
	return s, nil
}

// withComputed returns the configuration value with the computed attributes
// set from m, or unknown ("known after apply") when m is nil.
func withComputed(cfg cty.Value, m *Material) cty.Value {
	vals := map[string]cty.Value{}
	if cfg != cty.NilVal && !cfg.IsNull() && cfg.IsKnown() && cfg.Type().IsObjectType() {
		vals = cfg.AsValueMap()
		if vals == nil {
			vals = map[string]cty.Value{}
		}
	}
	for _, a := range keySchema.Attributes {
		if _, ok := vals[a.Name]; !ok {
			vals[a.Name] = cty.NullVal(a.Type)
		}
		if !a.Computed {
			if vals[a.Name].IsNull() && a.Default != cty.NilVal {
				vals[a.Name] = a.Default
			}
			continue
		}
		vals[a.Name] = cty.UnknownVal(a.Type)
	}
	if m != nil {
		k := m.Current
		vals["fingerprint"] = cty.StringVal(k.Fingerprint)
		vals["key_id"] = cty.StringVal(k.KeyID)
		vals["created"] = cty.StringVal(k.Created.UTC().Format(time.RFC3339))
		vals["expires"] = cty.StringVal(k.Expires.UTC().Format(time.RFC3339))
		vals["public_key"] = cty.StringVal(k.PublicArmored)
		prev := cty.ListValEmpty(cty.String)
		if fps := m.PreviousFingerprints(); len(fps) > 0 {
			var l []cty.Value
			for _, fp := range fps {
				l = append(l, cty.StringVal(fp))
			}
			prev = cty.ListVal(l)
		}
		vals["previous_fingerprints"] = prev
	}
	return cty.ObjectVal(vals)
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

func errDiags(summary string, err error) hcl.Diagnostics {
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: err.Error()}}
}

// Plan decides create, rotate, replace, update (retirement, settings) or
// destroy. It never needs the passphrase.
func (r *Resource) Plan(_ context.Context, req *providers.PlanRequest) (*providers.PlanResponse, error) {
	if req.Config == cty.NilVal || req.Config.IsNull() {
		if req.Prior == nil {
			return &providers.PlanResponse{Action: providers.NoOp, Planned: cty.NilVal}, nil
		}
		return &providers.PlanResponse{
			Action:  providers.Destroy,
			Reason:  "no longer declared; private key material will be deleted from state",
			Planned: cty.NullVal(keySchema.ObjectType()),
		}, nil
	}
	if !req.Config.IsWhollyKnown() {
		// A setting that depends on another resource: decide at apply.
		if req.Prior == nil {
			return &providers.PlanResponse{Action: providers.Create, Reason: "not in state", Planned: withComputed(req.Config, nil)}, nil
		}
	}
	s, err := decodeSettings(req.Config)
	if err != nil {
		return &providers.PlanResponse{Action: providers.NoOp, Diagnostics: errDiags("Invalid key configuration", err)}, nil
	}
	if req.Prior == nil {
		return &providers.PlanResponse{Action: providers.Create, Reason: "not in state", Planned: withComputed(req.Config, nil)}, nil
	}
	m, err := UnmarshalMaterial(req.Prior.Private)
	if err != nil {
		return nil, fmt.Errorf("key material in state is unreadable: %w", err)
	}
	now := req.Env.Now()
	cur := m.Current
	keep := fmt.Sprintf("the current key stays available for decryption for %s", s.retireAftS)
	switch {
	case s.alg != cur.Algorithm:
		return &providers.PlanResponse{
			Action:  providers.Replace,
			Reason:  fmt.Sprintf("algorithm changes from %s to %s (forces a new key; %s)", cur.Algorithm, s.alg, keep),
			Planned: withComputed(req.Config, nil),
		}, nil
	case !now.Before(cur.Expires):
		return &providers.PlanResponse{
			Action:  providers.Rotate,
			Reason:  fmt.Sprintf("expired %s; %s", day(cur.Expires), keep),
			Planned: withComputed(req.Config, nil),
		}, nil
	case !now.Before(cur.Expires.Add(-s.rotateBefore)):
		return &providers.PlanResponse{
			Action:  providers.Rotate,
			Reason:  fmt.Sprintf("expires %s, within the %s rotation window; %s", day(cur.Expires), s.rotateBeforeS, keep),
			Planned: withComputed(req.Config, nil),
		}, nil
	}
	var reasons []string
	for _, k := range m.Due(now, s.retireAfter) {
		reasons = append(reasons, fmt.Sprintf("retires predecessor %s (superseded %s; retire_after %s has passed)",
			k.Fingerprint, day(k.Superseded), s.retireAftS))
		m.Retire(k.Fingerprint)
	}
	for _, a := range userAttrs {
		before, after := str(req.Prior.Value, a, ""), str(req.Config, a, "")
		if before != after {
			reasons = append(reasons, changeReason(a, before, after))
		}
	}
	if len(reasons) == 0 {
		return &providers.PlanResponse{Action: providers.NoOp, Planned: req.Prior.Value}, nil
	}
	return &providers.PlanResponse{
		Action:  providers.Update,
		Reason:  strings.Join(reasons, "; "),
		Planned: withComputed(req.Config, m),
	}, nil
}

func changeReason(attr, before, after string) string {
	switch attr {
	case "passphrase_env":
		return fmt.Sprintf("passphrase_env changes from %s to %s (apply checks the new variable unlocks the keys)", before, after)
	case "retire_after":
		return fmt.Sprintf("retire_after changes from %s to %s", before, after)
	}
	return fmt.Sprintf("%s changes from %q to %q (takes effect at the next rotation)", attr, before, after)
}

// Apply carries out the planned action.
func (r *Resource) Apply(ctx context.Context, req *providers.ApplyRequest) (*providers.ApplyResponse, error) {
	planned := req.Planned
	if planned == nil {
		var err error
		planned, err = r.Plan(ctx, &providers.PlanRequest{Addr: req.Addr, Config: req.Config, Prior: req.Prior, Env: req.Env})
		if err != nil {
			return nil, err
		}
	}
	if planned.Diagnostics.HasErrors() {
		return &providers.ApplyResponse{State: req.Prior, Diagnostics: planned.Diagnostics}, nil
	}
	switch planned.Action {
	case providers.NoOp:
		return &providers.ApplyResponse{State: req.Prior}, nil
	case providers.Destroy:
		return &providers.ApplyResponse{State: nil}, nil
	}
	s, err := decodeSettings(req.Config)
	if err != nil {
		return nil, err
	}
	now := req.Env.Now().UTC()
	var m *Material
	if req.Prior != nil {
		if m, err = UnmarshalMaterial(req.Prior.Private); err != nil {
			return nil, fmt.Errorf("key material in state is unreadable: %w", err)
		}
	}
	switch planned.Action {
	case providers.Create, providers.Rotate, providers.Replace:
		pass, err := passphrase(req.Env, s.passEnv)
		if err != nil {
			return nil, err
		}
		// All keys of a resource share one passphrase, so DecryptionKeys
		// can unlock predecessors too: check before adding a new key.
		if m != nil {
			if err := checkUnlocks(m.Current, pass, s.passEnv); err != nil {
				return nil, err
			}
		}
		k, err := Generate(GenerateOptions{
			Name: s.name, Email: s.email, Algorithm: s.alg,
			ValidFor: s.validFor, Passphrase: pass, Now: now,
		})
		if err != nil {
			return nil, err
		}
		if m == nil {
			m = &Material{Current: k}
		} else {
			m.Rotate(k)
		}
		for _, old := range m.Due(now, s.retireAfter) {
			m.Retire(old.Fingerprint)
		}
		if err := writeHandoff(req.Env, handoffName(req.Addr), k, now); err != nil {
			return nil, err
		}
	case providers.Update:
		if m == nil {
			return nil, errors.New("update planned but the key is not in state")
		}
		if str(req.Prior.Value, "passphrase_env", "") != s.passEnv {
			pass, err := passphrase(req.Env, s.passEnv)
			if err != nil {
				return nil, err
			}
			for _, k := range m.Keys() {
				if err := checkUnlocks(k, pass, s.passEnv); err != nil {
					return nil, err
				}
			}
		}
		for _, old := range m.Due(now, s.retireAfter) {
			m.Retire(old.Fingerprint)
		}
	default:
		return nil, fmt.Errorf("key resources cannot %s", planned.Action)
	}
	priv, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	return &providers.ApplyResponse{State: &providers.Prior{
		Value:   withComputed(req.Config, m),
		Private: priv,
		Status:  state.StatusReady,
	}}, nil
}

func passphrase(env *providers.Env, name string) ([]byte, error) {
	getenv := env.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	v := getenv(name)
	if v == "" {
		return nil, fmt.Errorf("environment variable %s is empty; it must hold the passphrase that protects the private keys", name)
	}
	return []byte(v), nil
}

func checkUnlocks(k *Key, pass []byte, envName string) error {
	if _, err := Unlock(k.Protected, pass); err != nil {
		if errors.Is(err, ErrBadPassphrase) {
			return fmt.Errorf("the passphrase in %s does not unlock key %s: all keys of one resource share a passphrase", envName, k.Fingerprint)
		}
		return fmt.Errorf("key %s: %w", k.Fingerprint, err)
	}
	return nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// handoffName turns key.emis_2026 (or key.k["x"]) into a directory name.
func handoffName(addr string) string {
	n := strings.TrimPrefix(addr, "key.")
	n = strings.Trim(unsafeName.ReplaceAllString(n, "_"), "_.")
	if n == "" {
		return "key"
	}
	return n
}

type handoffDoc struct {
	Version int            `json:"version"`
	Kind    string         `json:"kind"`
	Created string         `json:"created"`
	Payload handoffPayload `json:"payload"`
}

type handoffPayload struct {
	Key         string    `json:"key"`
	Fingerprint string    `json:"fingerprint"`
	Algorithm   Algorithm `json:"algorithm"`
	Expires     string    `json:"expires"`
	Armored     string    `json:"armored"`
}

// HandoffPath is where apply writes a key's public key document.
func HandoffPath(handoffDir, addr, fingerprint string) string {
	return filepath.Join(handoffDir, "keys", handoffName(addr), "public_key-"+fingerprint+".json")
}

// writeHandoff writes the public key for suppliers: a versioned JSON
// document and its .asc twin, each atomically.
func writeHandoff(env *providers.Env, name string, k *Key, now time.Time) error {
	if env.Dirs.Handoff == "" {
		return errors.New("no handoff directory configured")
	}
	dir := filepath.Join(env.Dirs.Handoff, "keys", name)
	dirMode := env.DirMode
	if dirMode == 0 {
		dirMode = 0o750
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	doc, err := json.MarshalIndent(handoffDoc{
		Version: 1, Kind: "public_key", Created: now.UTC().Format(time.RFC3339),
		Payload: handoffPayload{
			Key: name, Fingerprint: k.Fingerprint, Algorithm: k.Algorithm,
			Expires: k.Expires.UTC().Format(time.RFC3339), Armored: k.PublicArmored,
		},
	}, "", "  ")
	if err != nil {
		return err
	}
	base := filepath.Join(dir, "public_key-"+k.Fingerprint)
	// The .asc first: a reader keyed on the .json finds its twin present.
	if err := writeAtomic(base+".asc", []byte(k.PublicArmored)); err != nil {
		return err
	}
	return writeAtomic(base+".json", append(doc, '\n'))
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil { // public keys: readable by the supplier's tooling
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
