package reconcile

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// unmarshalValue decodes a state value. It is ctyjson.Unmarshal, made
// several times faster for the plain values state holds (objects, lists,
// sets, maps and primitives): cty's decoder reads token by token, which
// made decoding priors a quarter of a national-scale plan. Anything else
// (dynamic values, a value of an unexpected shape, bad JSON) goes to
// ctyjson.Unmarshal, so results and errors are always cty's own.
func unmarshalValue(b []byte, ty cty.Type) (cty.Value, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var raw any
	if err := d.Decode(&raw); err == nil && !d.More() {
		if v, err := fromJSON(raw, ty); err == nil {
			return v, nil
		}
	}
	return ctyjson.Unmarshal(b, ty)
}

var errSlowPath = errors.New("not a plain value")

func fromJSON(raw any, ty cty.Type) (cty.Value, error) {
	if raw == nil {
		if ty == cty.DynamicPseudoType {
			return cty.NilVal, errSlowPath
		}
		return cty.NullVal(ty), nil
	}
	switch {
	case ty == cty.String:
		if s, ok := raw.(string); ok {
			return cty.StringVal(s), nil
		}
	case ty == cty.Number:
		if n, ok := raw.(json.Number); ok {
			return cty.ParseNumberVal(string(n))
		}
	case ty == cty.Bool:
		if v, ok := raw.(bool); ok {
			return cty.BoolVal(v), nil
		}
	case ty.IsObjectType():
		m, ok := raw.(map[string]any)
		if !ok {
			break
		}
		atys := ty.AttributeTypes()
		if len(atys) == 0 && len(m) == 0 {
			return cty.EmptyObjectVal, nil
		}
		vals := make(map[string]cty.Value, len(atys))
		for k, r := range m {
			aty, ok := atys[k]
			if !ok {
				return cty.NilVal, errSlowPath
			}
			v, err := fromJSON(r, aty)
			if err != nil {
				return cty.NilVal, err
			}
			vals[k] = v
		}
		for k, aty := range atys {
			if _, ok := vals[k]; !ok {
				vals[k] = cty.NullVal(aty)
			}
		}
		return cty.ObjectVal(vals), nil
	case ty.IsListType(), ty.IsSetType():
		xs, ok := raw.([]any)
		if !ok {
			break
		}
		ety := ty.ElementType()
		if len(xs) == 0 {
			if ty.IsListType() {
				return cty.ListValEmpty(ety), nil
			}
			return cty.SetValEmpty(ety), nil
		}
		vals := make([]cty.Value, len(xs))
		for i, r := range xs {
			v, err := fromJSON(r, ety)
			if err != nil {
				return cty.NilVal, err
			}
			vals[i] = v
		}
		if ty.IsListType() {
			return cty.ListVal(vals), nil
		}
		return cty.SetVal(vals), nil
	case ty.IsMapType():
		m, ok := raw.(map[string]any)
		if !ok {
			break
		}
		ety := ty.ElementType()
		if len(m) == 0 {
			return cty.MapValEmpty(ety), nil
		}
		vals := make(map[string]cty.Value, len(m))
		for k, r := range m {
			v, err := fromJSON(r, ety)
			if err != nil {
				return cty.NilVal, err
			}
			vals[k] = v
		}
		return cty.MapVal(vals), nil
	case ty.IsTupleType():
		xs, ok := raw.([]any)
		etys := ty.TupleElementTypes()
		if !ok || len(xs) != len(etys) {
			break
		}
		if len(xs) == 0 {
			return cty.EmptyTupleVal, nil
		}
		vals := make([]cty.Value, len(xs))
		for i, r := range xs {
			v, err := fromJSON(r, etys[i])
			if err != nil {
				return cty.NilVal, err
			}
			vals[i] = v
		}
		return cty.TupleVal(vals), nil
	}
	return cty.NilVal, errSlowPath
}
