package reconcile

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/im1dev/im1/config"
	"github.com/im1dev/im1/providers/record"
	"github.com/im1dev/im1/schema"
)

// extractState is an extract as the demo leaves it in state.
const extractState = `{"address":"extract.core","dataset":{"address":"dataset.core","approval_expires":null,"ig_approval":"IG-2026-014","recipient_keys":null,"table":[],"tables":["Admin_Patient","CareRecord_Observation"]},"schedule":{"address":"schedule.daily","frequency":"daily","lateness":"24h","retention":null,"start":"2026-11-16"},"source":{"address":"emis_site.central","architecture":"multi_organisation","host":"127.0.0.1","organisations":["A81001","A81002"],"port":45979,"recipient_keys":["D02E0AF40AEB1A8E22DD35EDCC13F1461CD1D670"],"sftp_request_size":32768,"use_agent":false,"user":"im1"}}`

// fuzzTypes are the shapes the differential test decodes against: every
// block type's state object, plus collections the schemas do not use.
func fuzzTypes() []cty.Type {
	tys := []cty.Type{
		cty.String, cty.Number, cty.Bool, cty.DynamicPseudoType,
		cty.List(cty.String), cty.Set(cty.Number), cty.Map(cty.Bool),
		cty.Tuple([]cty.Type{cty.String, cty.Number}), cty.EmptyObject, cty.EmptyTuple,
		cty.List(cty.Object(map[string]cty.Type{"name": cty.String, "n": cty.Number})),
		cty.Object(map[string]cty.Type{"d": cty.DynamicPseudoType, "s": cty.Set(cty.String)}),
	}
	for _, b := range []*schema.Block{record.Extract, record.Dataset, record.Schedule, record.Organisation} {
		tys = append(tys, config.ObjectType(b))
	}
	// State stores a value with its own concrete type, as an extract's is.
	ty, err := ctyjson.ImpliedType([]byte(extractState))
	if err != nil {
		panic(err)
	}
	return append(tys, ty)
}

// FuzzUnmarshalValue: the fast decoder agrees with cty's own on any JSON,
// for every type: the same value, or the same error. The one exception is
// JSON with a repeated object key, which state never holds (cty writes it):
// both keep the last value, but cty also checks the earlier ones.
func FuzzUnmarshalValue(f *testing.F) {
	for _, s := range []string{`null`, `"x"`, `12.5`, `true`, `["a","b"]`, `[1,1,2]`, `{"a":true}`, `["s",3]`, `{}`, `[]`,
		`[{"name":"n","n":1},{"name":null,"n":2}]`, `{"d":{"value":"x","type":"string"},"s":["a"]}`,
		`{"address":"extract.core","dataset":{"address":"dataset.core","tables":["Admin_Patient"]},"schedule":null}`,
		extractState, `"caf\u0065\u0301"`, `1e400`, `[1] [2]`, `{"name":"x","extra":1}`} {
		for i := range fuzzTypes() {
			f.Add([]byte(s), uint8(i))
		}
	}
	tys := fuzzTypes()
	f.Fuzz(func(t *testing.T, b []byte, which uint8) {
		ty := tys[int(which)%len(tys)]
		if repeatedKey(b) {
			t.Skip()
		}
		want, werr := ctyjson.Unmarshal(b, ty)
		got, gerr := unmarshalValue(b, ty)
		if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
			t.Fatalf("%s as %s: error %v, cty says %v", b, ty.FriendlyName(), gerr, werr)
		}
		if werr == nil && !got.RawEquals(want) {
			t.Fatalf("%s as %s: %#v, cty says %#v", b, ty.FriendlyName(), got, want)
		}
	})
}

// repeatedKey reports JSON with an object key twice in one object.
func repeatedKey(b []byte) bool {
	d := json.NewDecoder(bytes.NewReader(b))
	type obj struct {
		keys   map[string]bool
		expect bool // the next string token is a key
	}
	var stack []*obj
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		var top *obj
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				if top != nil {
					top.expect = true
				}
				stack = append(stack, &obj{keys: map[string]bool{}, expect: true})
				continue
			case '[':
				stack = append(stack, nil)
				continue
			default:
				stack = stack[:len(stack)-1]
				if n := len(stack); n > 0 && stack[n-1] != nil {
					stack[n-1].expect = true
				}
				continue
			}
		case string:
			if top != nil && top.expect {
				if top.keys[v] {
					return true
				}
				top.keys[v] = true
				top.expect = false
				continue
			}
		}
		if top != nil {
			top.expect = true
		}
	}
}
