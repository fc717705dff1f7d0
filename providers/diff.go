package providers

import (
	"sort"

	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/schema"
)

// Changed lists the configurable attributes and nested blocks whose values
// differ between before and after (computed attributes are the provider's
// business), and whether any of them forces replacement.
func Changed(s *schema.Block, before, after cty.Value) (names []string, forceNew bool) {
	for _, a := range s.Attributes {
		if a.Computed {
			continue
		}
		if !attrEqual(before, after, a.Name) {
			names = append(names, a.Name)
			forceNew = forceNew || a.ForceNew
		}
	}
	for _, n := range s.Blocks {
		if !attrEqual(before, after, n.Name) {
			names = append(names, n.Name)
		}
	}
	sort.Strings(names)
	return names, forceNew
}

func attrEqual(before, after cty.Value, name string) bool {
	b, a := GetAttr(before, name), GetAttr(after, name)
	if !a.IsWhollyKnown() || !b.IsWhollyKnown() {
		return false
	}
	if b.IsNull() || a.IsNull() {
		return b.IsNull() == a.IsNull()
	}
	eq := b.Equals(a)
	return eq.IsKnown() && eq.True()
}

// GetAttr reads an attribute of an object value, null when the value is
// null or lacks it (old state written before the attribute existed).
func GetAttr(v cty.Value, name string) cty.Value {
	if v == cty.NilVal || v.IsNull() || !v.IsKnown() || !v.Type().IsObjectType() || !v.Type().HasAttribute(name) {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	return v.GetAttr(name)
}

// String reads a string attribute ("" when null or unknown).
func String(v cty.Value, name string) string {
	a := GetAttr(v, name)
	if a.IsNull() || !a.IsKnown() || a.Type() != cty.String {
		return ""
	}
	return a.AsString()
}

// Strings reads a list or set of strings (unknown and null elements skipped).
func Strings(v cty.Value, name string) []string {
	a := GetAttr(v, name)
	if a.IsNull() || !a.IsKnown() || !a.CanIterateElements() {
		return nil
	}
	var out []string
	for it := a.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsKnown() && !e.IsNull() && e.Type() == cty.String {
			out = append(out, e.AsString())
		}
	}
	return out
}

// SetAttr returns obj with one attribute replaced.
func SetAttr(obj cty.Value, name string, val cty.Value) cty.Value {
	if obj == cty.NilVal || obj.IsNull() || !obj.Type().IsObjectType() {
		return obj
	}
	m := obj.AsValueMap()
	if m == nil {
		m = map[string]cty.Value{}
	}
	m[name] = val
	return cty.ObjectVal(m)
}
