package state

import (
	"bytes"
	"context"
	"testing"
)

// TestBlobOwnsDriverSlice guards blob's assumption: the driver hands each
// row's BLOB a slice of its own, so a value kept from one row is not
// overwritten by the next (database/sql would otherwise require a copy).
// It also checks NULL, empty and TEXT values.
func TestBlobOwnsDriverSlice(t *testing.T) {
	ctx := context.Background()
	s := newInternalState(t)
	rows, err := s.r.QueryContext(ctx, `WITH v(n, b) AS (VALUES
		(1, x'0101010101010101'), (2, x'0202020202020202'), (3, NULL), (4, x''), (5, 'text'))
		SELECT b FROM v ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []blob
	for rows.Next() {
		var b blob
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{bytes.Repeat([]byte{1}, 8), bytes.Repeat([]byte{2}, 8), nil, nil, []byte("text")}
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("row %d: %q, want %q", i+1, got[i], want[i])
		}
	}
	if got[2] != nil {
		t.Errorf("NULL scanned as %#v, want nil", got[2])
	}
}
