package pgpkey

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Typed decryption errors; match them with errors.Is.
var (
	ErrNotEncrypted = errors.New("not an encrypted OpenPGP message")
	// ErrNoKey: the message is encrypted, but not to any key we hold.
	ErrNoKey                 = errors.New("not encrypted to any of our keys")
	ErrNotIntegrityProtected = errors.New("message is not integrity protected (no MDC or AEAD)")
	// ErrIntegrity: MDC/AEAD mismatch, truncation, or corrupt encrypted data.
	ErrIntegrity = errors.New("integrity check failed")
	ErrSignature = errors.New("signature check failed")
	ErrTooLarge  = errors.New("decrypted message exceeds the size limit")
	ErrMalformed = errors.New("malformed OpenPGP message")
)

// fastPath enables the SEIPD v1 fast path (seipd.go); tests turn it off to
// compare against go-crypto's own reader.
var fastPath = true

// DefaultMaxDecompressed is the plaintext cap when DecryptOptions leaves it 0.
const DefaultMaxDecompressed int64 = 64 << 30

// limitSlack lets go-crypto's own decompression cap sit just above ours, so
// our counter (with a typed error) trips first and go-crypto's (which it
// reports only as a generic parsing error) stays a backstop.
const limitSlack = 1 << 20

// DecryptOptions configures Decrypt.
type DecryptOptions struct {
	// Keys are unlocked private keys (Material.DecryptionKeys).
	Keys openpgp.EntityList
	// Signers are the public keys whose signatures are accepted.
	Signers openpgp.EntityList
	// RequireSignature fails the message at EOF unless one of Signers
	// signed it validly.
	RequireSignature bool
	// MaxDecompressed caps the plaintext bytes (compressed or not); 0 means
	// DefaultMaxDecompressed.
	MaxDecompressed int64
}

// Plaintext is a decrypted message being streamed. Until Read returns
// io.EOF the data is untrusted: the MDC/AEAD tag and any signature are
// checked at the end, and a failure is returned by Read instead of io.EOF.
type Plaintext struct {
	// KeyFingerprint is the primary fingerprint of the key that decrypted it.
	KeyFingerprint string
	// EncryptedTo are the recipient key IDs the message names (upper hex).
	EncryptedTo []string
	// Signed and SignerFingerprint are valid only after Read returned io.EOF:
	// the message carried a valid signature by one of DecryptOptions.Signers.
	Signed            bool
	SignerFingerprint string

	md       *openpgp.MessageDetails
	body     io.Reader // md.UnverifiedBody, or the fast path's equivalent
	src      *srcReader
	opts     DecryptOptions
	max, n   int64
	err      error
	verified bool
}

// srcReader remembers a failure of the underlying reader (a dropped
// connection), which is reported as itself rather than as a verdict on the
// message.
type srcReader struct {
	r   io.Reader
	err error
}

func (s *srcReader) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

func (s *srcReader) or(err error) error {
	if s.err != nil {
		return fmt.Errorf("read ciphertext: %w", s.err)
	}
	return err
}

// ring is the KeyRing given to go-crypto: our keys and the signers, and a
// record of the key IDs it was asked for, so a failure to find a key can
// name the recipients (ReadMessage returns no details on error).
type ring struct {
	el    openpgp.EntityList
	asked []uint64
}

func (r *ring) KeysById(id uint64) []openpgp.Key { return r.el.KeysById(id) }

func (r *ring) EntitiesById(id uint64) []*openpgp.Entity {
	if !slices.Contains(r.asked, id) {
		r.asked = append(r.asked, id)
	}
	return r.el.EntitiesById(id)
}

func decryptConfig(limit int64) *packet.Config {
	return &packet.Config{
		DefaultHash:                            crypto.SHA256,
		DefaultCipher:                          packet.CipherAES256,
		MinRSABits:                             2047,
		InsecureAllowUnauthenticatedMessages:   false,
		InsecureAllowDecryptionWithSigningKeys: false,
		CheckPacketSequence:                    packet.BoolPointer(true),
		CheckIntendedRecipients:                packet.BoolPointer(true),
		MaxDecompressedMessageSize:             &limit,
	}
}

// Decrypt starts decrypting r (binary or ASCII-armoured). It fails early
// on anything that cannot be an integrity-protected message to one of
// opts.Keys; everything else is reported by Plaintext.Read.
func Decrypt(r io.Reader, opts DecryptOptions) (pt *Plaintext, err error) {
	max := opts.MaxDecompressed
	if max <= 0 {
		max = DefaultMaxDecompressed
	}
	src := &srcReader{r: r}
	// Smaller than the fast path's reads (seipdChunk), so once the headers
	// are parsed bufio hands those reads straight to src instead of
	// copying every ciphertext byte through its buffer.
	br := bufio.NewReaderSize(src, seipdChunk/2)
	head, _ := br.Peek(1024)
	if len(head) == 0 {
		if src.err == nil {
			return nil, fmt.Errorf("%w: empty input (truncated?)", ErrIntegrity)
		}
		return nil, src.or(nil)
	}
	var body io.Reader = br
	if head[0]&0x80 == 0 {
		// Not a binary packet header: it must be an armoured message.
		if !bytes.Contains(head, []byte("-----BEGIN PGP ")) {
			return nil, fmt.Errorf("%w: neither binary OpenPGP nor ASCII armour", ErrNotEncrypted)
		}
		block, err := armor.Decode(br)
		if err != nil {
			return nil, src.or(classifyHeader(err))
		}
		if block.Type != openpgp.MessageType {
			return nil, fmt.Errorf("%w: armoured %q, not a PGP MESSAGE", ErrNotEncrypted, block.Type)
		}
		body = block.Body
	}

	kr := &ring{el: append(append(openpgp.EntityList{}, opts.Keys...), opts.Signers...)}
	// go-crypto parses the headers in full; the recorder lets the fast
	// path (seipd.go) re-read the few KiB it consumed.
	rec := &recorder{r: body}
	cfg := decryptConfig(max + limitSlack)
	cfg.CacheSessionKey = true
	md, err := readMessage(rec, kr, cfg)
	recorded, complete := rec.replay()
	if err != nil {
		if errors.Is(err, pgperrors.ErrKeyIncorrect) {
			return nil, noKeyError(kr.asked, opts.Keys)
		}
		return nil, src.or(classifyHeader(err))
	}
	if !md.IsEncrypted {
		return nil, fmt.Errorf("%w: signed or literal data only", ErrNotEncrypted)
	}
	if md.IsSymmetricallyEncrypted && md.DecryptedWith.Entity == nil {
		return nil, fmt.Errorf("%w: passphrase-encrypted message", ErrNoKey)
	}
	pt = &Plaintext{md: md, body: md.UnverifiedBody, opts: opts, max: max, src: src}
	if complete && fastPath {
		if fb := newFastBody(md, recorded, body); fb != nil {
			pt.body = fb
		}
	}
	clear(md.SessionKey)
	md.SessionKey = nil
	if e := md.DecryptedWith.Entity; e != nil {
		pt.KeyFingerprint = fingerprint(e)
	}
	for _, id := range md.EncryptedToKeyIds {
		pt.EncryptedTo = append(pt.EncryptedTo, fmt.Sprintf("%016X", id))
	}
	return pt, nil
}

// keysMu serialises what asks go-crypto to choose among our keys (header
// parsing, noKeyError, reading a signed body, whose end checks the
// signature): choosing a key verifies its self-signatures and
// caches the verdict in the key objects (Signature.Valid) without
// synchronisation, and a batch's files decrypt concurrently with the same
// keys. The parse is a few KiB and one private-key operation; the body is
// read outside the lock.
var keysMu sync.Mutex

func readMessage(body io.Reader, kr openpgp.KeyRing, cfg *packet.Config) (md *openpgp.MessageDetails, err error) {
	keysMu.Lock()
	defer keysMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			md, err = nil, fmt.Errorf("%w: parser failure", ErrMalformed)
		}
	}()
	return openpgp.ReadMessage(body, kr, nil, cfg)
}

func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
}

// noKeyError distinguishes "not for us" from "for us but the session key
// does not decrypt" (a corrupt or forged key packet).
func noKeyError(asked []uint64, keys openpgp.EntityList) error {
	keysMu.Lock()
	defer keysMu.Unlock()
	var ids []string
	for _, id := range asked {
		for _, e := range keys {
			if len(e.DecryptionKeys(id, time.Time{}, decryptConfig(0))) > 0 {
				return fmt.Errorf("%w: the session key for our key %s (key ID %016X) does not decrypt: corrupt or tampered",
					ErrIntegrity, fingerprint(e), id)
			}
		}
		if id == 0 {
			ids = append(ids, "anonymous")
		} else {
			ids = append(ids, fmt.Sprintf("%016X", id))
		}
	}
	if len(ids) == 0 {
		return fmt.Errorf("%w: no public-key recipients", ErrNoKey)
	}
	return fmt.Errorf("%w: encrypted to key IDs %s", ErrNoKey, strings.Join(ids, ", "))
}

// classifyHeader maps errors seen before the literal data to typed errors.
func classifyHeader(err error) error {
	var decErr pgperrors.DecryptWithSessionKeyError
	switch {
	case errors.Is(err, ErrMalformed):
		return err
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated", ErrIntegrity)
	case err == pgperrors.UnsupportedError("message is not integrity protected"):
		return ErrNotIntegrityProtected
	case errors.As(err, &decErr):
		return fmt.Errorf("%w: decrypted data does not parse: corrupt or tampered", ErrIntegrity)
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// classifyBody maps errors from reading the decrypted stream.
func classifyBody(err error) error {
	var decErr pgperrors.DecryptWithSessionKeyError
	var sigErr pgperrors.SignatureError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated", ErrIntegrity)
	case err == pgperrors.ErrMDCHashMismatch, err == pgperrors.ErrMDCMissing, err == pgperrors.ErrAEADTagVerification:
		return fmt.Errorf("%w: %v", ErrIntegrity, err)
	case errors.As(err, &decErr):
		return fmt.Errorf("%w: %v (corrupt, truncated or tampered)", ErrIntegrity, err)
	case errors.As(err, &sigErr):
		return fmt.Errorf("%w: %v", ErrIntegrity, err)
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// Read streams plaintext. At the end it returns io.EOF only if the
// integrity check and the signature policy passed.
func (p *Plaintext) Read(b []byte) (n int, err error) {
	if p.err != nil {
		return 0, p.err
	}
	if p.verified {
		return 0, io.EOF
	}
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("%w: parser failure", ErrMalformed)
			p.err = err
		}
	}()
	if p.md.IsSigned {
		// go-crypto checks signatures as the body ends, choosing the
		// signer's key as it does ours in the header: same lock (see keysMu).
		n, err = func() (int, error) {
			keysMu.Lock()
			defer keysMu.Unlock() // also when the parser panics
			return p.body.Read(b)
		}()
	} else {
		n, err = p.body.Read(b)
	}
	p.n += int64(n)
	if p.n > p.max {
		p.err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, p.max)
		return 0, p.err
	}
	switch {
	case err == io.EOF:
		if err := p.checkSignature(); err != nil {
			p.err = err
			return n, err
		}
		p.verified = true
		return n, io.EOF
	case err != nil:
		p.err = p.src.or(classifyBody(err))
		return n, p.err
	}
	return n, nil
}

// checkSignature applies the signature policy once the body is verified.
func (p *Plaintext) checkSignature() error {
	md := p.md
	if !md.IsSigned {
		if p.opts.RequireSignature {
			return fmt.Errorf("%w: message is not signed", ErrSignature)
		}
		return nil
	}
	if md.SignatureError == nil && md.SignedBy != nil {
		fp := fingerprint(md.SignedBy.Entity)
		if slices.ContainsFunc(p.opts.Signers, func(e *openpgp.Entity) bool { return fingerprint(e) == fp }) {
			p.Signed, p.SignerFingerprint = true, fp
			return nil
		}
		if p.opts.RequireSignature {
			return fmt.Errorf("%w: signed by %s, which is not an accepted signer", ErrSignature, fp)
		}
		return nil
	}
	// A bad signature from a key we know is tampering whatever the policy;
	// an unknown signer only matters when a signature is required.
	if md.SignedBy != nil || p.opts.RequireSignature {
		return fmt.Errorf("%w: %v", ErrSignature, md.SignatureError)
	}
	return nil
}

// EncryptOptions configures Encrypt.
type EncryptOptions struct {
	Armor    bool
	Compress bool // zlib, level 6
	Signer   *openpgp.Entity
	Cipher   packet.CipherFunction // 0 means AES-256
	// Now selects the recipients' valid encryption subkeys and dates the
	// signature (zero: time.Now()).
	Now time.Time
	// FileName goes into the literal data packet (optional).
	FileName string
}

// Encrypt returns a writer that encrypts to every recipient in to, as
// SEIPD v1 (CFB + MDC) with v3 key packets: what GnuPG-based suppliers
// produce and read. Close it to finish the message (and the armour).
func Encrypt(w io.Writer, to openpgp.EntityList, opts EncryptOptions) (io.WriteCloser, error) {
	if len(to) == 0 {
		return nil, errors.New("pgpkey: no recipients")
	}
	cipher := opts.Cipher
	if cipher == 0 {
		cipher = packet.CipherAES256
	}
	switch cipher {
	case packet.CipherAES128, packet.CipherAES192, packet.CipherAES256:
	default:
		return nil, fmt.Errorf("pgpkey: cipher %d not allowed (AES only)", cipher)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	cfg := &packet.Config{
		DefaultHash:            crypto.SHA256,
		DefaultCipher:          cipher,
		DefaultCompressionAlgo: packet.CompressionNone, // compression is layered below, explicitly
		MinRSABits:             2047,
		Time:                   func() time.Time { return now },
	}
	keys := make([]openpgp.Key, len(to))
	for i, e := range to {
		k, err := e.EncryptionKeyWithError(now, cfg)
		if err != nil {
			return nil, fmt.Errorf("pgpkey: recipient %s: %w", fingerprint(e), err)
		}
		keys[i] = k
	}
	if opts.Signer != nil && opts.Signer.PrivateKey == nil {
		return nil, errors.New("pgpkey: signer has no private key")
	}

	out := &closers{}
	var dst io.Writer = w
	if opts.Armor {
		aw, err := armor.Encode(w, openpgp.MessageType, nil)
		if err != nil {
			return nil, err
		}
		out.push(aw)
		dst = aw
	}
	sessionKey := make([]byte, cipher.KeySize())
	if _, err := io.ReadFull(rand.Reader, sessionKey); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := packet.SerializeEncryptedKey(dst, k.PublicKey, cipher, sessionKey, cfg); err != nil {
			return nil, fmt.Errorf("pgpkey: encrypt session key: %w", err)
		}
	}
	// Each packet writer closes the one beneath it, so only the outermost
	// packet layer and the armour need closing.
	payload, err := packet.SerializeSymmetricallyEncrypted(dst, cipher, false, packet.CipherSuite{}, sessionKey, cfg)
	clear(sessionKey)
	if err != nil {
		return nil, err
	}
	if opts.Compress {
		payload, err = packet.SerializeCompressed(payload, packet.CompressionZLIB, &packet.CompressionConfig{Level: 6})
		if err != nil {
			return nil, err
		}
	}
	hints := &openpgp.FileHints{FileName: opts.FileName}
	if opts.Signer != nil {
		// SignWithParams writes one-pass signature, literal data and
		// signature into payload but does not close it.
		out.push(payload)
		sw, err := openpgp.SignWithParams(payload, []*openpgp.Entity{opts.Signer}, &openpgp.SignParams{Hints: hints, Config: cfg})
		if err != nil {
			return nil, fmt.Errorf("pgpkey: sign: %w", err)
		}
		out.push(sw)
		return out, nil
	}
	lw, err := packet.SerializeLiteral(payload, true, opts.FileName, 0)
	if err != nil {
		return nil, err
	}
	out.push(lw)
	return out, nil
}

// closers writes to the innermost layer and closes layers innermost first.
type closers struct{ list []io.WriteCloser }

func (c *closers) push(w io.WriteCloser) { c.list = append(c.list, w) }

func (c *closers) Write(b []byte) (int, error) { return c.list[len(c.list)-1].Write(b) }

func (c *closers) Close() error {
	for i := len(c.list) - 1; i >= 0; i-- {
		if err := c.list[i].Close(); err != nil {
			return err
		}
	}
	return nil
}
