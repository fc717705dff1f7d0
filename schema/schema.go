// Package schema describes the shape of every im1 configuration block: its
// attributes, their types, defaults and checks, and nested blocks. Providers
// declare schemas; the config package decodes HCL against them and the docs
// test renders them, so the three cannot disagree.
package schema

import (
	"fmt"
	"sort"

	"github.com/zclconf/go-cty/cty"
)

// Block is the schema of one block type (or nested block).
type Block struct {
	// Doc is one sentence shown in the schema reference.
	Doc string
	// Attributes in the order the reference lists them.
	Attributes []*Attribute
	// Blocks are nested blocks, e.g. `table "SRCode" { ... }` in a dataset.
	Blocks []*NestedBlock
	// ForEach allows `for_each` on this (top-level) block.
	ForEach bool
}

// Attribute is one attribute of a block.
type Attribute struct {
	Name string
	// Type is the cty type the value is converted to. cty.DynamicPseudoType
	// accepts any value (used for references to whole blocks, e.g. `source`).
	Type cty.Type
	// Required attributes must be set; Optional ones may be; Computed ones
	// are set by apply (fingerprint, ...) and may not appear in configuration.
	Required bool
	Computed bool
	// Sensitive values are never printed in plans, show output or logs.
	Sensitive bool
	// Default applies when an optional attribute is not set (cty.NilVal: null).
	Default cty.Value
	// ForceNew means a change of this attribute replaces the resource.
	ForceNew bool
	Doc      string
	// Check validates a known, non-null value after conversion; its error
	// message becomes the diagnostic detail.
	Check func(cty.Value) error
}

// NestedBlock is a block allowed inside another block.
type NestedBlock struct {
	Name string
	// Labels names the block's labels, e.g. ["name"] for `table "SRCode" {}`.
	// The first label is exposed as attribute "name" of each nested object.
	Labels []string
	Block  *Block
	// MinItems and MaxItems bound how many may appear (0: unbounded max).
	MinItems, MaxItems int
	Doc                string
}

// Attribute returns the named attribute or nil.
func (b *Block) Attribute(name string) *Attribute {
	for _, a := range b.Attributes {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// NestedBlock returns the named nested block or nil.
func (b *Block) NestedBlock(name string) *NestedBlock {
	for _, n := range b.Blocks {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Names lists attribute and nested block names, sorted; used for "did you mean".
func (b *Block) Names() []string {
	var out []string
	for _, a := range b.Attributes {
		out = append(out, a.Name)
	}
	for _, n := range b.Blocks {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}

// ObjectType is the cty object type of a decoded block value, including
// computed attributes and nested blocks (as lists of objects). The config
// package adds the implicit "address" attribute to resource objects.
func (b *Block) ObjectType() cty.Type {
	attrs := map[string]cty.Type{}
	for _, a := range b.Attributes {
		attrs[a.Name] = a.Type
	}
	for _, n := range b.Blocks {
		et := n.Block.ObjectType()
		if len(n.Labels) > 0 {
			m := et.AttributeTypes()
			m[n.Labels[0]] = cty.String
			et = cty.Object(m)
		}
		attrs[n.Name] = cty.List(et)
	}
	return cty.Object(attrs)
}

// SensitivePaths lists attribute names marked sensitive.
func (b *Block) SensitivePaths() []string {
	var out []string
	for _, a := range b.Attributes {
		if a.Sensitive {
			out = append(out, a.Name)
		}
	}
	return out
}

// TypeString renders a cty type the way the reference and diagnostics show it.
func TypeString(t cty.Type) string {
	switch {
	case t == cty.DynamicPseudoType:
		return "any"
	case t.IsPrimitiveType():
		return t.FriendlyName()
	case t.IsListType():
		return fmt.Sprintf("list(%s)", TypeString(t.ElementType()))
	case t.IsSetType():
		return fmt.Sprintf("set(%s)", TypeString(t.ElementType()))
	case t.IsMapType():
		return fmt.Sprintf("map(%s)", TypeString(t.ElementType()))
	default:
		return t.FriendlyName()
	}
}

// NilValue is cty.NilVal, named here so callers need not import cty to
// test for "no default".
var NilValue = cty.NilVal

// DisplayValue renders a primitive default the way HCL would write it.
func DisplayValue(v cty.Value) string {
	switch v.Type() {
	case cty.String:
		return fmt.Sprintf("%q", v.AsString())
	case cty.Bool:
		if v.True() {
			return "true"
		}
		return "false"
	case cty.Number:
		return v.AsBigFloat().Text('f', -1)
	}
	return v.GoString()
}
