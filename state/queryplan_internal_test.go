package state

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// newInternalState opens a new, empty state file for the package's
// internal tests; it is closed when the test ends.
func newInternalState(t *testing.T) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "im1.state"), Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestQueryPlansUseIndexes guards the read paths that run over millions of
// rows: each must walk an index, never scan the table or sort in a temp
// B-tree.
func TestQueryPlansUseIndexes(t *testing.T) {
	ctx := context.Background()
	s := newInternalState(t)
	tests := []struct {
		query string
		args  []any
	}{
		{`SELECT ` + deliveryCols + ` FROM deliveries WHERE extract = ? ORDER BY day, batch_id, id`, []any{"x"}},
		{`SELECT ` + deliveryCols + ` FROM deliveries ORDER BY extract, day, batch_id, id`, nil},
		{`SELECT id FROM deliveries WHERE source = ? AND batch_id = ?`, []any{"s", "b"}},
		{`SELECT ` + fileCols + ` FROM files WHERE delivery_id = ? ORDER BY id`, []any{1}},
		{`SELECT * FROM observations WHERE source = ? ORDER BY delivery_id, org_guid`, []any{"s"}},
		{`SELECT * FROM listings WHERE source = ? ORDER BY name`, []any{"s"}},
		{`SELECT * FROM handoffs WHERE source = ? ORDER BY id`, []any{"s"}},
		{`DELETE FROM files WHERE delivery_id = ?`, []any{1}}, // the cascade's lookup
	}
	for _, tc := range tests {
		rows, err := s.r.QueryContext(ctx, `EXPLAIN QUERY PLAN `+tc.query, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if strings.Contains(p, "TEMP B-TREE") || (strings.Contains(p, "SCAN") && !strings.Contains(p, "USING INDEX")) {
			t.Errorf("%s\nplan: %s", tc.query, p)
		}
	}
}
