package state

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
)

// DeliveryDigest is an exact, compact summary of one extract's deliveries:
// what a plan without refresh needs, in one row instead of one row per
// delivery (a year of daily deliveries for 7,000 practices is 2.5 million
// rows; their digests are 7,000). It is derived data: every write to
// deliveries marks the extract dirty (a trigger, in the same transaction)
// and Tx rebuilds the digests of dirty extracts before it commits.
type DeliveryDigest struct {
	Extract string
	// Pending counts deliveries a crashed run left pending; a plan that
	// must finish them reads their rows.
	Pending int
	Groups  []DigestGroup
}

// DigestGroup is the deliveries of one source, status and kind, in the
// (day, batch_id, id) order Deliveries uses.
type DigestGroup struct {
	Source, Status, Kind string
	Cutoffs              []int64 // unix nanoseconds, as stored
	// Batches and Reasons run parallel to Cutoffs, except for landed
	// deltas, the bulk of any history, which keep only their cut-offs.
	Batches, Reasons []string
}

// Detailed reports whether the group keeps batch ids and reasons.
func (g *DigestGroup) Detailed() bool { return !(g.Status == DeliveryLanded && g.Kind == "delta") }

const digestVersion = 1

func (d *DeliveryDigest) encode() []byte {
	b := binary.AppendUvarint(nil, digestVersion)
	b = binary.AppendUvarint(b, uint64(d.Pending))
	b = binary.AppendUvarint(b, uint64(len(d.Groups)))
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	for i := range d.Groups {
		g := &d.Groups[i]
		str(g.Source)
		str(g.Status)
		str(g.Kind)
		b = binary.AppendUvarint(b, uint64(len(g.Cutoffs)))
		var prev int64
		for _, n := range g.Cutoffs {
			b = binary.AppendVarint(b, n-prev) // deltas: a day is 6 bytes
			prev = n
		}
		if g.Detailed() {
			for j := range g.Cutoffs {
				str(g.Batches[j])
				str(g.Reasons[j])
			}
		}
	}
	return b
}

var errDigest = errors.New("malformed delivery digest")

func decodeDigest(extract string, b []byte) (*DeliveryDigest, error) {
	uv := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	bad := false
	str := func() string {
		n := uv()
		if n > uint64(len(b)) {
			bad = true
			return ""
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	if uv() != digestVersion {
		return nil, errDigest
	}
	d := &DeliveryDigest{Extract: extract, Pending: int(uv())}
	ng := uv()
	if ng > uint64(len(b)) {
		return nil, errDigest
	}
	d.Groups = make([]DigestGroup, ng)
	for i := range d.Groups {
		g := &d.Groups[i]
		g.Source, g.Status, g.Kind = str(), str(), str()
		n := uv()
		if n > uint64(len(b)) {
			return nil, errDigest
		}
		g.Cutoffs = make([]int64, n)
		var prev int64
		for j := range g.Cutoffs {
			v, k := binary.Varint(b)
			if k <= 0 {
				return nil, errDigest
			}
			b = b[k:]
			prev += v
			g.Cutoffs[j] = prev
		}
		if g.Detailed() {
			g.Batches, g.Reasons = make([]string, n), make([]string, n)
			for j := range g.Cutoffs {
				g.Batches[j], g.Reasons[j] = str(), str()
			}
		}
		if bad || b == nil && i < len(d.Groups)-1 {
			return nil, errDigest
		}
	}
	if bad || len(b) != 0 {
		return nil, errDigest
	}
	return d, nil
}

// buildDigest summarises extract's deliveries as the transaction sees them.
func buildDigest(ctx context.Context, tx *sql.Tx, extract string) (*DeliveryDigest, error) {
	rows, err := tx.QueryContext(ctx, `SELECT source, status, kind, cutoff, batch_id, reason FROM deliveries
		WHERE extract = ? ORDER BY day, batch_id, id`, extract)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	d := &DeliveryDigest{Extract: extract}
	idx := map[[3]string]int{}
	for rows.Next() {
		var k [3]string
		var cutoff int64
		var batch, reason string
		if err := rows.Scan(&k[0], &k[1], &k[2], &cutoff, &batch, &reason); err != nil {
			return nil, err
		}
		if k[1] == DeliveryPending {
			d.Pending++
		}
		i, ok := idx[k]
		if !ok {
			i = len(d.Groups)
			idx[k] = i
			d.Groups = append(d.Groups, DigestGroup{Source: k[0], Status: k[1], Kind: k[2]})
		}
		g := &d.Groups[i]
		g.Cutoffs = append(g.Cutoffs, cutoff)
		if g.Detailed() {
			g.Batches, g.Reasons = append(g.Batches, batch), append(g.Reasons, reason)
		}
	}
	return d, rows.Err()
}

// refreshDigests rebuilds the digests of the extracts this transaction's
// writes marked dirty. It writes derived data only, so it does not count
// as a change (the serial is not bumped for it).
func refreshDigests(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT extract FROM digest_dirty`)
	if err != nil {
		return err
	}
	var dirty []string
	for rows.Next() {
		var x string
		if err := rows.Scan(&x); err != nil {
			rows.Close()
			return err
		}
		dirty = append(dirty, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, x := range dirty {
		d, err := buildDigest(ctx, tx, x)
		if err != nil {
			return fmt.Errorf("delivery digest of %s: %w", x, err)
		}
		if len(d.Groups) == 0 {
			_, err = tx.ExecContext(ctx, `DELETE FROM delivery_digests WHERE extract = ?`, x)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO delivery_digests (extract, digest) VALUES (?, ?)
				ON CONFLICT (extract) DO UPDATE SET digest = excluded.digest`, x, d.encode())
		}
		if err != nil {
			return fmt.Errorf("delivery digest of %s: %w", x, err)
		}
	}
	if len(dirty) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM digest_dirty`); err != nil {
			return err
		}
	}
	return nil
}

// Digests holds encoded digests by extract address; Get decodes one, so a
// national state's digests stay a few bytes per delivery until used.
type Digests map[string][]byte

// Get returns extract's digest, or nil when it has none that is current.
func (ds Digests) Get(extract string) (*DeliveryDigest, error) {
	b, ok := ds[extract]
	if !ok {
		return nil, nil
	}
	d, err := decodeDigest(extract, b)
	if err != nil {
		return nil, fmt.Errorf("state: %s: %w", extract, err)
	}
	return d, nil
}

// DeliveryDigests returns the digest of every extract whose digest is
// current. An extract with deliveries but no digest here (not yet built,
// as after an upgrade until the next write) must be read with Deliveries.
func (s *SQLite) DeliveryDigests(ctx context.Context) (Digests, error) {
	rows, err := s.query(ctx, `SELECT extract, digest FROM delivery_digests
		WHERE extract NOT IN (SELECT extract FROM digest_dirty)`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := Digests{}
	for rows.Next() {
		var x string
		var b blob
		if err := rows.Scan(&x, &b); err != nil {
			return nil, err
		}
		out[x] = b
	}
	return out, rows.Err()
}
