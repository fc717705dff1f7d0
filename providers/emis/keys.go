package emis

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/pgpkey"
)

// keyRecord is a key resource as state holds it.
type keyRecord struct {
	addr          string
	passphraseEnv string
	publicKey     string
	fingerprint   string
	material      *pgpkey.Material
}

// stateKeys indexes every key in state by every fingerprint it can decrypt
// with (current and predecessors), so rotation never drops a delivery.
func stateKeys(ctx context.Context, env *providers.Env) (map[string]*keyRecord, error) {
	out := map[string]*keyRecord{}
	if env.Store == nil {
		return out, nil
	}
	rs, err := env.Store.Resources(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if r.Type != "key" || len(r.Private) == 0 {
			continue
		}
		var attrs struct {
			PassphraseEnv string `json:"passphrase_env"`
			PublicKey     string `json:"public_key"`
			Fingerprint   string `json:"fingerprint"`
		}
		if err := json.Unmarshal(r.Attrs, &attrs); err != nil {
			return nil, fmt.Errorf("%s: %w", r.Addr, err)
		}
		m, err := pgpkey.UnmarshalMaterial(r.Private)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Addr, err)
		}
		kr := &keyRecord{addr: r.Addr, passphraseEnv: attrs.PassphraseEnv, publicKey: attrs.PublicKey, fingerprint: attrs.Fingerprint, material: m}
		for _, k := range m.Keys() {
			out[strings.ToUpper(k.Fingerprint)] = kr
		}
	}
	return out, nil
}

// decryptionKeys unlocks the keys behind the given recipient fingerprints.
// Each key resource's passphrase comes from its own environment variable;
// it is never logged or put in an error.
func decryptionKeys(ctx context.Context, env *providers.Env, fingerprints []string) (openpgp.EntityList, error) {
	all, err := stateKeys(ctx, env)
	if err != nil {
		return nil, err
	}
	var list openpgp.EntityList
	done := map[*keyRecord]bool{}
	for _, f := range fingerprints {
		kr := all[strings.ToUpper(f)]
		if kr == nil {
			return nil, fmt.Errorf("recipient key %s is not in state: apply the key resource first", f)
		}
		if done[kr] {
			continue
		}
		done[kr] = true
		pass := env.Getenv(kr.passphraseEnv)
		if pass == "" {
			return nil, fmt.Errorf("%s: environment variable %s is empty; it must hold the key's passphrase", kr.addr, kr.passphraseEnv)
		}
		keys, err := kr.material.DecryptionKeys([]byte(pass))
		if err != nil {
			return nil, fmt.Errorf("%s: unlocking with %s: %w", kr.addr, kr.passphraseEnv, err)
		}
		list = append(list, keys...)
	}
	return list, nil
}
