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
	"github.com/im1dev/im1/state"
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

// FuzzAppendValue: the fast encoder writes exactly what ctyjson.Marshal
// writes for any value cty decodes, or declines (errSlowPath); samePrior's
// "state holds exactly this value" rests on it.
func FuzzAppendValue(f *testing.F) {
	for _, s := range []string{`null`, `"x"`, `"<a&b>"`, `"caf\u00e9\n"`, `"\u2028"`, `12.5`, `-0.000001`, `1e30`, `true`, `["a","b"]`,
		`[3,1,2]`, `{"a":true,"b":false}`, `["s",3]`, `{}`, `[]`, `[{"name":"n","n":1},{"name":null,"n":2}]`,
		`{"d":{"value":"x","type":"string"},"s":["b","a"]}`, extractState} {
		for i := range fuzzTypes() {
			f.Add([]byte(s), uint8(i))
		}
	}
	tys := fuzzTypes()
	f.Fuzz(func(t *testing.T, b []byte, which uint8) {
		ty := tys[int(which)%len(tys)]
		v, err := ctyjson.Unmarshal(b, ty)
		if err != nil || hugeNumber(v) {
			t.Skip() // cty would print every digit of 3e300000000
		}
		want, werr := ctyjson.Marshal(v, ty)
		got, gerr := appendValue([]byte("prefix"), v, ty)
		switch {
		case gerr == errSlowPath:
			return
		case gerr != nil || werr != nil:
			t.Fatalf("%#v as %s: error %v, cty says %v", v, ty.FriendlyName(), gerr, werr)
		case string(got) != "prefix"+string(want):
			t.Fatalf("%#v as %s:\n got %s\nwant prefix%s", v, ty.FriendlyName(), got, want)
		}
	})
}

func TestAppendValueCoversState(t *testing.T) {
	ty, err := ctyjson.ImpliedType([]byte(extractState))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ctyjson.Unmarshal([]byte(extractState), ty)
	if err != nil {
		t.Fatal(err)
	}
	got, err := appendValue(nil, v, ty)
	if err != nil || string(got) != extractState {
		t.Fatalf("an extract's state took the slow path or differs (%v):\n%s", err, got)
	}
}

// hugeNumber reports a number whose decimal form would run to megabytes.
func hugeNumber(v cty.Value) bool {
	huge := false
	_ = cty.Walk(v, func(_ cty.Path, x cty.Value) (bool, error) {
		if x.IsKnown() && !x.IsNull() && x.Type() == cty.Number {
			if e := x.AsBigFloat().MantExp(nil); e > 4096 || e < -4096 {
				huge = true
			}
		}
		return !huge, nil
	})
	return huge
}

// TestSamePrior: only state holding exactly the configured value (same
// type, same JSON) skips decoding, and then the prior is that value.
func TestSamePrior(t *testing.T) {
	site := cty.ObjectVal(map[string]cty.Value{
		"address": cty.StringVal(`emis_site.org["A81001"]`),
		"host":    cty.StringVal("sftp.example.nhs.uk"),
		"port":    cty.NumberIntVal(22),
		"orgs":    cty.ListVal([]cty.Value{cty.StringVal("A81001")}),
		"key":     cty.NullVal(cty.String),
	})
	stored := func(v cty.Value) *state.Resource {
		attrs, typ, err := encodeValue(v)
		if err != nil {
			t.Fatal(err)
		}
		return &state.Resource{Addr: `emis_site.org["A81001"]`, Attrs: attrs, AttrsType: typ, Status: state.StatusTainted, Private: []byte("p")}
	}
	with := func(name string, a cty.Value) cty.Value {
		m := site.AsValueMap()
		m[name] = a
		return cty.ObjectVal(m)
	}
	tests := []struct {
		name   string
		state  cty.Value
		config cty.Value
		same   bool
	}{
		{"identical", site, site, true},
		{"string changed", site, with("host", cty.StringVal("sftp2.example.nhs.uk")), false},
		{"number changed", site, with("port", cty.NumberIntVal(2222)), false},
		{"null set", site, with("key", cty.StringVal("k")), false},
		{"list grew", site, with("orgs", cty.ListVal([]cty.Value{cty.StringVal("A81001"), cty.StringVal("A81002")})), false},
		{"list became set", site, with("orgs", cty.SetVal([]cty.Value{cty.StringVal("A81001")})), false},
		{"unknown in config", site, with("host", cty.UnknownVal(cty.String)), false},
		{"escaped string", with("host", cty.StringVal("a<b>&\"c\"\n")), with("host", cty.StringVal("a<b>&\"c\"\n")), true},
		{"attribute added since", with("key", cty.NullVal(cty.String)), cty.ObjectVal(map[string]cty.Value{"address": site.GetAttr("address")}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := samePrior(stored(tc.state), tc.config)
			if (p != nil) != tc.same {
				t.Fatalf("samePrior = %v, want same %v", p, tc.same)
			}
			if p == nil {
				return
			}
			if !p.Unchanged || p.Status != state.StatusTainted || string(p.Private) != "p" || !p.Value.RawEquals(tc.config) {
				t.Fatalf("prior %+v does not carry the state's status and private data, or not the configured value", p)
			}
		})
	}
}
