package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/record"
	"github.com/im1dev/im1/schema"
)

// series is a test resource with one instance per day for a year.
type series struct{ providers.NoRefresh }

var seriesSchema = &schema.Block{Attributes: []*schema.Attribute{{Name: "value", Type: cty.String, Required: true}}}

func (series) Schema() *schema.Block { return seriesSchema }
func (series) Plan(_ context.Context, req *providers.PlanRequest) (*providers.PlanResponse, error) {
	resp := record.Plan(seriesSchema, req.Config, req.Prior)
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 365; i++ {
		a := providers.Landed
		if i%50 == 7 {
			a = providers.Fetch
		}
		resp.Instances = append(resp.Instances, providers.InstanceChange{Key: day.AddDate(0, 0, i).Format(time.DateOnly), Action: a, Reason: fmt.Sprint("r", i%3)})
	}
	return resp, nil
}
func (series) Apply(context.Context, *providers.ApplyRequest) (*providers.ApplyResponse, error) {
	return nil, fmt.Errorf("not for apply")
}

// The streamed -json document decodes to the same document as the
// buffered one, and the plan it leaves keeps no per-instance detail.
func TestJSONStreamMatchesDocument(t *testing.T) {
	f := newFixture(t, `
series "a" { value = "a" }
series "b" { value = "b" }
thing "t" { value = "t" }
`)
	plan := func() *Plan {
		e, diags := Load(Options{Dir: f.dir, Registry: providers.Registry{"series": series{}, "thing": f.th},
			Now: func() time.Time { return time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC) }})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		if err := e.OpenState(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		p, diags := e.Plan(context.Background())
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return p
	}
	buffered := plan()
	want, _ := json.Marshal(buffered.Document())

	var out bytes.Buffer
	// The stream needs the engine for its header; start it before planning.
	e2, diags := Load(Options{Dir: f.dir, Registry: providers.Registry{"series": series{}, "thing": f.th},
		Now: func() time.Time { return time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC) }})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	js := NewJSONStream(&out, e2)
	e2.SetStream(js.Change)
	if err := e2.OpenState(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	streamed, diags := e2.Plan(context.Background())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if err := js.Finish(streamed); err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	if err := json.Unmarshal(want, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), &b); err != nil {
		t.Fatalf("streamed output is not JSON: %v\n%s", err, out.String())
	}
	for _, m := range []map[string]any{a, b} {
		rcs := m["resource_changes"].([]any)
		sort.Slice(rcs, func(i, j int) bool {
			return rcs[i].(map[string]any)["address"].(string) < rcs[j].(map[string]any)["address"].(string)
		})
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("streamed document differs from the buffered one:\n%s\n---\n%s", want, out.String())
	}
	for _, c := range streamed.Changes {
		if c.Instances != nil {
			t.Errorf("%s kept %d instances after streaming", c.Addr, len(c.Instances))
		}
	}
	if streamed.Empty() != buffered.Empty() || streamed.Empty() {
		t.Errorf("Empty: streamed %v, buffered %v", streamed.Empty(), buffered.Empty())
	}
	if n := len(b["resource_changes"].([]any)[0].(map[string]any)["instances"].([]any)); n != 365 {
		t.Errorf("instances written: %d", n)
	}
}
