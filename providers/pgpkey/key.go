// Package pgpkey generates, protects, rotates and uses the OpenPGP key pairs
// suppliers encrypt extracts to, and implements the `key` resource. Every
// algorithm choice is spelled out in a packet.Config: go-crypto's nil-config
// defaults (RSA-2048, AES-128) are not what a supplier should get.
package pgpkey

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"
)

// Algorithm names a key type as the `key` resource spells it.
type Algorithm string

// Supported algorithms. All produce v4 keys: GnuPG 2.2 suppliers cannot read
// v6 keys or SEIPDv2.
const (
	RSA4096    Algorithm = "rsa4096"
	RSA3072    Algorithm = "rsa3072"
	Curve25519 Algorithm = "curve25519" // EdDSA primary + ECDH cv25519 subkey
)

// DefaultAlgorithm is the algorithm suppliers are most likely to accept.
const DefaultAlgorithm = RSA4096

// Algorithms lists the supported algorithms in documentation order.
var Algorithms = []Algorithm{RSA4096, RSA3072, Curve25519}

// Valid reports whether a is a supported algorithm.
func (a Algorithm) Valid() bool {
	for _, b := range Algorithms {
		if a == b {
			return true
		}
	}
	return false
}

// S2KCount is the iterated+salted S2K count protecting private keys: the
// largest value OpenPGP can encode, since unlocking happens once per apply.
const S2KCount = 65011712

// ErrBadPassphrase is returned by Unlock when the passphrase is wrong.
var ErrBadPassphrase = errors.New("pgpkey: wrong passphrase (or corrupt private key)")

// maxExpiry keeps creation+lifetime inside GnuPG's unsigned 32-bit clock.
var maxExpiry = time.Unix(math.MaxUint32, 0)

// GenerateOptions describes a new key.
type GenerateOptions struct {
	Name, Email, Comment string
	Algorithm            Algorithm // "" means DefaultAlgorithm
	// ValidFor is the key lifetime; it must be positive (no eternal keys).
	ValidFor   time.Duration
	Passphrase []byte
	// Now is the creation time (zero: time.Now()); truncated to seconds.
	Now time.Time
}

// Key is a generated key as state keeps it: public facts plus the
// S2K-protected private key. It never holds private material in clear.
type Key struct {
	Fingerprint string // 40 upper-case hex digits
	KeyID       string // 16 upper-case hex digits
	Algorithm   Algorithm
	Created     time.Time
	Expires     time.Time
	// Superseded is when a newer key replaced this one (zero while current);
	// retirement is measured from it.
	Superseded    time.Time
	PublicArmored string
	// Protected is the armoured private key, protected with iterated+salted
	// SHA-256 S2K (count S2KCount) and AES-256, readable by gpg --import.
	Protected []byte
}

// keyConfig is the one place key-generation choices are made.
func keyConfig(alg Algorithm, now time.Time, lifetime uint32) (*packet.Config, error) {
	cfg := &packet.Config{
		DefaultHash:   crypto.SHA256,
		DefaultCipher: packet.CipherAES256,
		// Advertised after "uncompressed" in the key's preferences, so
		// senders (and Encrypt with Compress) may use zlib.
		DefaultCompressionAlgo: packet.CompressionZLIB,
		CompressionConfig:      &packet.CompressionConfig{Level: 6},
		S2KConfig: &s2k.Config{
			S2KMode:  s2k.IteratedSaltedS2K,
			Hash:     crypto.SHA256,
			S2KCount: S2KCount,
		},
		// No AEADConfig: the key must not advertise SEIPDv2, which GnuPG 2.2 cannot read.
		AEADConfig:      nil,
		V6Keys:          false,
		KeyLifetimeSecs: lifetime,
		MinRSABits:      3072,
		Time:            func() time.Time { return now },
	}
	switch alg {
	case RSA4096:
		cfg.Algorithm, cfg.RSABits = packet.PubKeyAlgoRSA, 4096
	case RSA3072:
		cfg.Algorithm, cfg.RSABits = packet.PubKeyAlgoRSA, 3072
	case Curve25519:
		cfg.Algorithm, cfg.Curve = packet.PubKeyAlgoEdDSA, packet.Curve25519
	default:
		return nil, fmt.Errorf("pgpkey: unsupported algorithm %q (want one of %s)", alg, algorithmList())
	}
	return cfg, nil
}

func algorithmList() string {
	var s []string
	for _, a := range Algorithms {
		s = append(s, string(a))
	}
	return strings.Join(s, ", ")
}

// readConfig is used for reading keys and messages: defaults of go-crypto's
// v2 API that reject weak algorithms, spelled out.
func readConfig() *packet.Config {
	return &packet.Config{
		DefaultHash:   crypto.SHA256,
		DefaultCipher: packet.CipherAES256,
		MinRSABits:    2047,
	}
}

// Generate makes a new v4 key pair and protects its private half.
func Generate(opts GenerateOptions) (*Key, error) {
	alg := opts.Algorithm
	if alg == "" {
		alg = DefaultAlgorithm
	}
	if len(opts.Passphrase) == 0 {
		return nil, errors.New("pgpkey: empty passphrase: private keys are only kept protected")
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.Truncate(time.Second)
	if opts.ValidFor < time.Second {
		return nil, fmt.Errorf("pgpkey: validity %s must be positive", opts.ValidFor)
	}
	secs := opts.ValidFor / time.Second
	if secs > math.MaxUint32 || now.Add(opts.ValidFor).After(maxExpiry) {
		return nil, fmt.Errorf("pgpkey: validity %s ends after %s, beyond what OpenPGP can express",
			opts.ValidFor, maxExpiry.UTC().Format(time.DateOnly))
	}
	cfg, err := keyConfig(alg, now, uint32(secs))
	if err != nil {
		return nil, err
	}
	e, err := openpgp.NewEntity(opts.Name, opts.Comment, opts.Email, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgpkey: generate %s key: %w", alg, err)
	}
	pub, err := armorPublic(e)
	if err != nil {
		return nil, err
	}
	if err := e.EncryptPrivateKeys(opts.Passphrase, cfg); err != nil {
		return nil, fmt.Errorf("pgpkey: protect private key: %w", err)
	}
	var priv bytes.Buffer
	w, err := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.SerializePrivateWithoutSigning(w, cfg); err != nil {
		return nil, fmt.Errorf("pgpkey: serialise private key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	k := describe(e)
	k.Algorithm = alg
	k.PublicArmored = pub
	k.Protected = priv.Bytes()
	return k, nil
}

// describe fills the public facts of a Key from an entity.
func describe(e *openpgp.Entity) *Key {
	pk := e.PrimaryKey
	k := &Key{
		Fingerprint: strings.ToUpper(hex.EncodeToString(pk.Fingerprint)),
		KeyID:       fmt.Sprintf("%016X", pk.KeyId),
		Algorithm:   algorithmOf(pk),
		Created:     pk.CreationTime.UTC(),
	}
	if sig, err := e.PrimarySelfSignature(time.Time{}, readConfig()); err == nil && sig.KeyLifetimeSecs != nil && *sig.KeyLifetimeSecs > 0 {
		k.Expires = k.Created.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second)
	}
	return k
}

func algorithmOf(pk *packet.PublicKey) Algorithm {
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly:
		if bits, err := pk.BitLength(); err == nil {
			switch {
			case bits > 3072:
				return RSA4096
			case bits > 2048:
				return RSA3072
			}
		}
		return Algorithm("rsa")
	case packet.PubKeyAlgoEdDSA:
		return Curve25519
	}
	return Algorithm(fmt.Sprintf("algo%d", pk.PubKeyAlgo))
}

func armorPublic(e *openpgp.Entity) (string, error) {
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		return "", err
	}
	if err := e.Serialize(w); err != nil {
		return "", fmt.Errorf("pgpkey: serialise public key: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	b.WriteByte('\n')
	return b.String(), nil
}

// readOne parses exactly one armoured key.
func readOne(armored []byte) (e *openpgp.Entity, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, err = nil, errors.New("pgpkey: malformed key")
		}
	}()
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armored))
	if err != nil {
		return nil, fmt.Errorf("pgpkey: read key: %w", err)
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("pgpkey: want one key, found %d", len(el))
	}
	return el[0], nil
}

// ParsePublic reads one armoured public key (a supplier's signing key, or
// ours back from the handoff directory).
func ParsePublic(armored string) (*openpgp.Entity, error) {
	return readOne([]byte(armored))
}

// Unlock reads a protected private key and decrypts it with passphrase. A
// wrong passphrase gives ErrBadPassphrase; no error mentions the passphrase.
func Unlock(protected []byte, passphrase []byte) (*openpgp.Entity, error) {
	e, err := readProtected(protected)
	if err != nil {
		return nil, err
	}
	if err := decryptPrivate(e, passphrase); err != nil {
		return nil, ErrBadPassphrase
	}
	return e, nil
}

// UnlockForDecryption is Unlock for decrypting messages only: it unlocks
// the subkeys that can encrypt and leaves the primary key, which
// certifies and signs, protected (so it is never in memory in clear). It
// is also half the work for a key of im1's (a primary key and one
// encryption subkey): each protected key packet costs a whole S2K, since
// go-crypto's S2K cache never hits (v1.5.2 stores the nil it looked up
// instead of the derived key). A key with no subkey that can encrypt is
// unlocked whole, as Unlock does.
func UnlockForDecryption(protected []byte, passphrase []byte) (*openpgp.Entity, error) {
	e, err := readProtected(protected)
	if err != nil {
		return nil, err
	}
	var subs []*packet.PrivateKey
	for _, sk := range e.Subkeys {
		if pk := sk.PrivateKey; pk != nil && !pk.Dummy() && pk.PubKeyAlgo.CanEncrypt() {
			subs = append(subs, pk)
		}
	}
	if len(subs) == 0 {
		if err := decryptPrivate(e, passphrase); err != nil {
			return nil, ErrBadPassphrase
		}
		return e, nil
	}
	for _, pk := range subs {
		if !pk.Encrypted {
			return nil, errors.New("pgpkey: private subkey is not passphrase-protected")
		}
		if err := decryptSubkey(pk, passphrase); err != nil {
			return nil, ErrBadPassphrase
		}
	}
	return e, nil
}

// readProtected reads one private key and checks that it is protected: an
// unprotected key would "unlock" with any passphrase, and state only ever
// holds protected ones, so such a key is corrupt or foreign. (A primary
// key exported as a stub, for its subkeys alone, holds nothing to protect.)
func readProtected(protected []byte) (*openpgp.Entity, error) {
	e, err := readOne(protected)
	if err != nil {
		return nil, err
	}
	if e.PrivateKey == nil {
		return nil, errors.New("pgpkey: not a private key")
	}
	if !e.PrivateKey.Dummy() && !e.PrivateKey.Encrypted {
		return nil, errors.New("pgpkey: private key is not passphrase-protected")
	}
	return e, nil
}

func decryptSubkey(pk *packet.PrivateKey, passphrase []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("pgpkey: malformed private key")
		}
	}()
	return pk.Decrypt(passphrase)
}

func decryptPrivate(e *openpgp.Entity, passphrase []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("pgpkey: malformed private key")
		}
	}()
	return e.DecryptPrivateKeys(passphrase)
}
