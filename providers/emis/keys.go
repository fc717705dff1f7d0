package emis

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/extract"
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

// recipientKeys are the fingerprints an extract's files are encrypted to.
func recipientKeys(req *extract.Request) []string {
	if fprs := providers.Strings(req.Dataset, "recipient_keys"); len(fprs) > 0 {
		return fprs
	}
	return providers.Strings(req.Source, "recipient_keys")
}

// maxPrepared bounds the unlocks prepareKeys starts and ApplyExtract has
// not taken yet: a plan over many sites with keys of their own must not
// run every S2K at once, nor hold keys unlocked for extracts with nothing
// to fetch. Beyond it, ApplyExtract unlocks as it always could.
const maxPrepared = 4

// prepareKeys starts unlocking the keys behind fprs while an apply's plan
// connects to and lists the site: each key's S2K is 50-80 ms of CPU,
// which otherwise stood between the listing and the first download. The
// site's refresh calls it before dialling, so the S2K runs while the SSH
// handshake waits on the network; the extract's plan calls it again for
// its own recipient keys (a dataset may name others). It does nothing when
// the keys cannot be found yet (a key created by this apply);
// ApplyExtract then unlocks them itself and reports any error.
func (p *Provider) prepareKeys(ctx context.Context, env *providers.Env, fprs []string) {
	if len(fprs) == 0 {
		return
	}
	id := keySetID(fprs)
	p.unlocking.Lock()
	defer p.unlocking.Unlock()
	if _, ok := p.unlocking.m[id]; ok || len(p.unlocking.m) >= maxPrepared {
		return
	}
	wait, err := unlockKeys(ctx, env, fprs)
	if err != nil {
		return
	}
	if p.unlocking.m == nil {
		p.unlocking.m = map[string]func() (openpgp.EntityList, error){}
	}
	p.unlocking.m[id] = wait
}

// keySetID names a set of recipient fingerprints, however they are spelt.
func keySetID(fprs []string) string { return strings.ToUpper(strings.Join(fprs, ",")) }

// decryptionKeys returns an extract's unlocked keys: those prepareKeys
// started, or unlocked now. The unlocked keys are held no longer than
// this apply of the extract.
func (p *Provider) decryptionKeys(ctx context.Context, req *extract.Request) (openpgp.EntityList, error) {
	fprs := recipientKeys(req)
	id := keySetID(fprs)
	p.unlocking.Lock()
	wait := p.unlocking.m[id]
	delete(p.unlocking.m, id)
	p.unlocking.Unlock()
	if wait == nil {
		var err error
		if wait, err = unlockKeys(ctx, req.Env, fprs); err != nil {
			return nil, err
		}
	}
	return wait()
}

// unlockKeys starts unlocking the keys behind the given recipient
// fingerprints and returns a function that waits for them. Each key
// resource's passphrase comes from its own environment variable; it is
// never logged or put in an error. Finding the keys in state and the
// passphrases in the environment happens now, so those errors come
// first; the unlocking itself runs on a goroutine of its own, which ends
// on its own whether or not anyone waits.
func unlockKeys(ctx context.Context, env *providers.Env, fingerprints []string) (wait func() (openpgp.EntityList, error), err error) {
	all, err := stateKeys(ctx, env)
	if err != nil {
		return nil, err
	}
	type job struct {
		kr   *keyRecord
		pass string
	}
	var jobs []job
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
		jobs = append(jobs, job{kr, pass})
	}
	type result struct {
		keys openpgp.EntityList
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		var list openpgp.EntityList
		for _, j := range jobs {
			keys, err := j.kr.material.DecryptionKeys([]byte(j.pass))
			if err != nil {
				ch <- result{err: fmt.Errorf("%s: unlocking with %s: %w", j.kr.addr, j.kr.passphraseEnv, err)}
				return
			}
			list = append(list, keys...)
		}
		ch <- result{keys: list}
	}()
	return func() (openpgp.EntityList, error) {
		r := <-ch
		return r.keys, r.err
	}, nil
}
