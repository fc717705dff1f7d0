package reconcile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/im1dev/im1/config"
	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/schema"
	"github.com/im1dev/im1/state"
)

// encodeValue turns a known object value into state's JSON value and type.
func encodeValue(v cty.Value) (attrs, typ []byte, err error) {
	if v == cty.NilVal || v.IsNull() {
		return []byte("null"), []byte(`"dynamic"`), nil
	}
	if !v.IsWhollyKnown() {
		return nil, nil, fmt.Errorf("value still has unknowns after apply")
	}
	if typ, err = ctyjson.MarshalType(v.Type()); err != nil {
		return nil, nil, err
	}
	attrs, err = ctyjson.Marshal(v, v.Type())
	return attrs, typ, err
}

// decodePrior reads a state resource into a provider prior, converted to the
// current schema's object type (attributes added since are null; removed
// ones dropped), so old state keeps working after an upgrade.
func decodePrior(r *state.Resource, s *schema.Block) (*providers.Prior, error) {
	ty, err := stateType(r.AttrsType)
	if err != nil {
		return nil, fmt.Errorf("%s: state attribute type: %w", r.Addr, err)
	}
	v, err := unmarshalValue(r.Attrs, ty)
	if err != nil {
		return nil, fmt.Errorf("%s: state attributes: %w", r.Addr, err)
	}
	if s != nil {
		if want := config.ObjectType(s); !v.Type().Equals(want) {
			v = fitObject(v, want)
		}
	}
	return &providers.Prior{Value: v, Private: r.Private, Status: r.Status}, nil
}

// samePrior returns the prior of an instance whose state holds exactly its
// configured value v (the same type and the same JSON), without decoding
// state: Value is v itself, marked Unchanged. It returns nil otherwise, and
// for values not wholly known. Most instances of a settled configuration
// are unchanged, and decoding and comparing them cost a third of a plan of
// 7,000 sites.
func samePrior(sr *state.Resource, v cty.Value) *providers.Prior {
	if v == cty.NilVal {
		return nil
	}
	ty, err := stateType(sr.AttrsType)
	if err != nil || !ty.Equals(v.Type()) {
		return nil
	}
	buf := jsonBufs.Get().(*[]byte)
	defer jsonBufs.Put(buf)
	js, err := appendValue((*buf)[:0], v, ty) // fails on unknown values
	*buf = js
	if err != nil || !bytes.Equal(js, sr.Attrs) {
		return nil
	}
	return &providers.Prior{Value: v, Private: sr.Private, Status: sr.Status, Unchanged: true}
}

var jsonBufs = sync.Pool{New: func() any { return new([]byte) }}

// stateTypes caches decoded state types: thousands of instances of one
// resource block share a handful of types, and decoding a type's JSON cost
// as much as decoding the value. A plain map, because its lookup by
// string(js) does not copy js (a sync.Map's does: 7.5 MB in a national
// plan).
var stateTypes struct {
	sync.RWMutex
	m map[string]cty.Type
}

func stateType(js []byte) (cty.Type, error) {
	stateTypes.RLock()
	t, ok := stateTypes.m[string(js)]
	stateTypes.RUnlock()
	if ok {
		return t, nil
	}
	t, err := ctyjson.UnmarshalType(js)
	if err != nil {
		return cty.NilType, err
	}
	stateTypes.Lock()
	if stateTypes.m == nil {
		stateTypes.m = map[string]cty.Type{}
	}
	stateTypes.m[string(js)] = t
	stateTypes.Unlock()
	return t, nil
}

// fitObject reshapes an object value to the wanted object type.
func fitObject(v cty.Value, want cty.Type) cty.Value {
	if v.IsNull() || !v.Type().IsObjectType() || !want.IsObjectType() {
		return v
	}
	out := map[string]cty.Value{}
	for name, at := range want.AttributeTypes() {
		if !v.Type().HasAttribute(name) {
			out[name] = cty.NullVal(at)
			continue
		}
		a := v.GetAttr(name)
		if at == cty.DynamicPseudoType {
			out[name] = a
			continue
		}
		if c, err := convert.Convert(a, at); err == nil {
			out[name] = c
		} else {
			out[name] = cty.NullVal(at)
		}
	}
	return cty.ObjectVal(out)
}

// withAddress sets the implicit "address" attribute.
func withAddress(v cty.Value, addr string) cty.Value {
	if v == cty.NilVal || v.IsNull() || !v.IsKnown() || !v.Type().IsObjectType() {
		return v
	}
	if v.Type().HasAttribute("address") {
		if a := v.GetAttr("address"); a.Type() == cty.String && a.IsKnown() && !a.IsNull() && a.AsString() == addr {
			return v // already there (state and configuration both carry it): no copy
		}
	}
	return providers.SetAttr(v, "address", cty.StringVal(addr))
}

// unknownComputed marks computed attributes that a create, replace or
// rotate leaves null as unknown: their values are known only after apply.
func unknownComputed(s *schema.Block, planned cty.Value, action providers.Action) cty.Value {
	if planned == cty.NilVal || planned.IsNull() || !planned.IsKnown() || !planned.Type().IsObjectType() {
		return planned
	}
	switch action {
	case providers.Create, providers.Replace, providers.Rotate:
	default:
		return planned
	}
	m := planned.AsValueMap()
	for _, a := range s.Attributes {
		if a.Computed {
			if p, ok := m[a.Name]; !ok || p.IsNull() {
				m[a.Name] = cty.UnknownVal(a.Type)
			}
		}
	}
	return cty.ObjectVal(m)
}

// jsonAttrs converts an object to plain JSON values per attribute, listing
// unknown attributes separately and leaving sensitive ones out.
func jsonAttrs(v cty.Value, sensitive []string) (map[string]any, []string) {
	if v == cty.NilVal || v.IsNull() || !v.IsKnown() || !v.Type().IsObjectType() {
		return nil, nil
	}
	hide := map[string]bool{}
	for _, s := range sensitive {
		hide[s] = true
	}
	out := map[string]any{}
	var unknown []string
	for name, a := range v.AsValueMap() {
		if hide[name] {
			continue
		}
		if ref := refAddress(a); ref != "" {
			// A reference to another block shows as its address, known
			// even while some of that block's attributes are not.
			out[name] = map[string]any{"address": ref}
			continue
		}
		if !a.IsWhollyKnown() {
			unknown = append(unknown, name)
			continue
		}
		if a.IsNull() {
			continue
		}
		b, err := ctyjson.Marshal(a, a.Type())
		if err != nil {
			continue
		}
		var x any
		if json.Unmarshal(b, &x) == nil {
			out[name] = x
		}
	}
	sort.Strings(unknown)
	return out, unknown
}

// refAddress is the address of a value that is a whole block object.
func refAddress(v cty.Value) string {
	if !v.IsKnown() || v.IsNull() || !v.Type().IsObjectType() || !v.Type().HasAttribute("address") {
		return ""
	}
	a := v.GetAttr("address")
	if !a.IsKnown() || a.IsNull() || a.Type() != cty.String {
		return ""
	}
	return a.AsString()
}
