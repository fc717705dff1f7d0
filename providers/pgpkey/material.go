package pgpkey

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// Material is what the key resource keeps in state (providers.Prior.Private):
// the current key and its predecessors, all protected. Predecessors stay so
// files encrypted to them before a rotation can still be decrypted.
type Material struct {
	Current  *Key
	Previous []*Key // newest first
}

// materialVersion is bumped when the stored JSON changes shape.
const materialVersion = 1

type wireKey struct {
	Fingerprint string     `json:"fingerprint"`
	KeyID       string     `json:"key_id"`
	Algorithm   Algorithm  `json:"algorithm"`
	Created     time.Time  `json:"created"`
	Expires     time.Time  `json:"expires"`
	Superseded  *time.Time `json:"superseded,omitempty"`
	Public      string     `json:"public_key"`
	Protected   string     `json:"protected_private_key"`
}

type wireMaterial struct {
	Version  int       `json:"version"`
	Current  *wireKey  `json:"current"`
	Previous []wireKey `json:"previous,omitempty"`
}

func toWire(k *Key) wireKey {
	w := wireKey{
		Fingerprint: k.Fingerprint, KeyID: k.KeyID, Algorithm: k.Algorithm,
		Created: k.Created.UTC(), Expires: k.Expires.UTC(),
		Public: k.PublicArmored, Protected: string(k.Protected),
	}
	if !k.Superseded.IsZero() {
		t := k.Superseded.UTC()
		w.Superseded = &t
	}
	return w
}

func fromWire(w wireKey) (*Key, error) {
	if len(w.Fingerprint) != 40 || len(w.KeyID) != 16 || w.Protected == "" {
		return nil, errors.New("pgpkey: key material in state is incomplete")
	}
	k := &Key{
		Fingerprint: w.Fingerprint, KeyID: w.KeyID, Algorithm: w.Algorithm,
		Created: w.Created, Expires: w.Expires,
		PublicArmored: w.Public, Protected: []byte(w.Protected),
	}
	if w.Superseded != nil {
		k.Superseded = *w.Superseded
	}
	return k, nil
}

// Marshal encodes the material for state. The private keys stay protected.
func (m *Material) Marshal() ([]byte, error) {
	if m == nil || m.Current == nil {
		return nil, errors.New("pgpkey: no current key to store")
	}
	c := toWire(m.Current)
	w := wireMaterial{Version: materialVersion, Current: &c}
	for _, p := range m.Previous {
		w.Previous = append(w.Previous, toWire(p))
	}
	return json.Marshal(w)
}

// MarshalKey encodes one key the way Material does (used by fixtures).
func MarshalKey(k *Key) ([]byte, error) {
	return json.MarshalIndent(toWire(k), "", "  ")
}

// UnmarshalKey decodes MarshalKey output.
func UnmarshalKey(b []byte) (*Key, error) {
	var w wireKey
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("pgpkey: decode key: %w", err)
	}
	return fromWire(w)
}

// UnmarshalMaterial decodes Marshal output.
func UnmarshalMaterial(b []byte) (*Material, error) {
	var w wireMaterial
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("pgpkey: decode key material: %w", err)
	}
	if w.Version != materialVersion {
		return nil, fmt.Errorf("pgpkey: key material version %d, this im1 reads version %d", w.Version, materialVersion)
	}
	if w.Current == nil {
		return nil, errors.New("pgpkey: key material has no current key")
	}
	cur, err := fromWire(*w.Current)
	if err != nil {
		return nil, err
	}
	m := &Material{Current: cur}
	for _, p := range w.Previous {
		k, err := fromWire(p)
		if err != nil {
			return nil, err
		}
		m.Previous = append(m.Previous, k)
	}
	return m, nil
}

// Rotate makes next the current key; the old current becomes the newest
// predecessor, superseded at next's creation time.
func (m *Material) Rotate(next *Key) {
	if m.Current != nil {
		old := *m.Current
		old.Superseded = next.Created
		m.Previous = append([]*Key{&old}, m.Previous...)
	}
	m.Current = next
}

// Retire drops the predecessor with the given fingerprint (case-insensitive).
// The current key is never retired this way.
func (m *Material) Retire(fingerprint string) {
	out := m.Previous[:0]
	for _, p := range m.Previous {
		if !strings.EqualFold(p.Fingerprint, fingerprint) {
			out = append(out, p)
		}
	}
	m.Previous = out
}

// Due lists predecessors whose retirement time (superseded + retireAfter)
// has come at now.
func (m *Material) Due(now time.Time, retireAfter time.Duration) []*Key {
	var due []*Key
	for _, p := range m.Previous {
		if !p.Superseded.IsZero() && !now.Before(p.Superseded.Add(retireAfter)) {
			due = append(due, p)
		}
	}
	return due
}

// Keys lists the current key then the predecessors.
func (m *Material) Keys() []*Key {
	if m.Current == nil {
		return m.Previous
	}
	return append([]*Key{m.Current}, m.Previous...)
}

// PreviousFingerprints lists the predecessors' fingerprints, newest first.
func (m *Material) PreviousFingerprints() []string {
	var s []string
	for _, p := range m.Previous {
		s = append(s, p.Fingerprint)
	}
	return s
}

// DecryptionKeys unlocks the current key and every predecessor. All keys of
// one resource share its passphrase. Each unlock is an S2K of tens of
// milliseconds of CPU, so during a rotation's overlap the keys unlock at
// once, on as many cores; the first error (in key order) is returned.
func (m *Material) DecryptionKeys(passphrase []byte) (openpgp.EntityList, error) {
	keys := m.Keys()
	el := make(openpgp.EntityList, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() {
			e, err := UnlockForDecryption(k.Protected, passphrase)
			if err != nil {
				errs[i] = fmt.Errorf("unlock key %s: %w", k.Fingerprint, err)
				return
			}
			el[i] = e
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return el, nil
}

// ExportPublic returns the armoured public key of the current key, and of
// the predecessors too when all is set (for `im1 keys export`).
func ExportPublic(m *Material, all bool) string {
	var b strings.Builder
	for i, k := range m.Keys() {
		if i > 0 && !all {
			break
		}
		b.WriteString(k.PublicArmored)
	}
	return b.String()
}

// ExportPrivate returns the private keys exactly as stored, still protected:
// the current key first, then the predecessors, as one file gpg --import reads.
func ExportPrivate(m *Material) []byte {
	var b []byte
	for _, k := range m.Keys() {
		b = append(b, k.Protected...)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			b = append(b, '\n')
		}
	}
	return b
}
