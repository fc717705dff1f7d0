package reconcile

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strconv"

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

// appendValue appends ctyjson.Marshal(v, ty) to dst, byte for byte, for the
// plain values state holds, without cty's per-value allocations (encoding
// every configured instance to compare it with state was a fifth of a
// national-scale plan through cty). Values it does not cover (unknown,
// marked, dynamic, capsule) return errSlowPath; callers then treat the
// value as not comparable, never as equal.
func appendValue(dst []byte, v cty.Value, ty cty.Type) ([]byte, error) {
	if v.IsMarked() || !v.IsKnown() || ty == cty.DynamicPseudoType && v.Type() != cty.DynamicPseudoType {
		return dst, errSlowPath // cty wraps a dynamic value with its type
	}
	if v.IsNull() {
		return append(dst, "null"...), nil
	}
	var err error
	switch {
	case ty == cty.String:
		return appendString(dst, v.AsString())
	case ty == cty.Bool:
		if v.True() {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case ty == cty.Number:
		f := v.AsBigFloat()
		if f.IsInf() || f.MantExp(nil) > 1024 || f.MantExp(nil) < -1024 {
			return dst, errSlowPath // infinities fail; huge exponents print megabytes
		}
		if i, acc := f.Int64(); acc == big.Exact && i != 0 {
			return strconv.AppendInt(dst, i, 10), nil // what Append prints, at a fraction of its cost
		}
		return f.Append(dst, 'f', -1), nil
	case ty.IsListType() || ty.IsSetType() || ty.IsTupleType():
		// A tuple's elements each have their own type; the others share one.
		elemType := func(int) cty.Type { return ty.ElementType() }
		if ty.IsTupleType() {
			elemType = func(i int) cty.Type { return ty.TupleElementTypes()[i] }
		}
		dst = append(dst, '[')
		i := 0
		for it := v.ElementIterator(); it.Next(); i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			_, ev := it.Element()
			if dst, err = appendValue(dst, ev, elemType(i)); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case ty.IsMapType():
		ety := ty.ElementType()
		dst = append(dst, '{')
		first := true
		for it := v.ElementIterator(); it.Next(); {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			ek, ev := it.Element()
			if dst, err = appendString(dst, ek.AsString()); err != nil {
				return dst, err
			}
			dst = append(dst, ':')
			if dst, err = appendValue(dst, ev, ety); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case ty.IsObjectType():
		atys := ty.AttributeTypes()
		var buf [48]string
		names := buf[:0]
		for k := range atys {
			names = append(names, k)
		}
		slices.Sort(names)
		dst = append(dst, '{')
		for i, k := range names {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendString(dst, k); err != nil {
				return dst, err
			}
			dst = append(dst, ':')
			if dst, err = appendValue(dst, v.GetAttr(k), atys[k]); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	return dst, errSlowPath // capsules
}

// appendString appends s as encoding/json writes it: plain ASCII as is,
// anything needing an escape (including <, > and &) through json.Marshal.
func appendString(dst []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, err := json.Marshal(s)
			return append(dst, b...), err
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"'), nil
}
