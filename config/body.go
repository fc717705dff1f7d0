package config

import (
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/im1dev/im1/schema"
)

// checkBody validates the shape of a body against a schema without
// evaluating anything: known names, required arguments, no computed ones,
// nested block labels and counts. meta names (for_each) are accepted.
func checkBody(body *hclsyntax.Body, s *schema.Block, meta map[string]bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	names := s.Names()
	for _, a := range sortedAttributes(body) {
		if meta[a.Name] {
			continue
		}
		sa := s.Attribute(a.Name)
		switch {
		case sa == nil && s.NestedBlock(a.Name) != nil:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported argument",
				Detail:   fmt.Sprintf("An argument named %q is not expected here. Did you mean to define a block of type %q?", a.Name, a.Name),
				Subject:  a.NameRange.Ptr(),
			})
		case sa == nil:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported argument",
				Detail:   fmt.Sprintf("An argument named %q is not expected here.", a.Name) + didYouMean(a.Name, names),
				Subject:  a.NameRange.Ptr(),
			})
		case sa.Computed:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Value for unconfigurable attribute",
				Detail:   fmt.Sprintf("Can't configure a value for %q: its value is decided by apply.", a.Name),
				Subject:  a.NameRange.Ptr(),
			})
		}
	}
	for _, sa := range s.Attributes {
		if sa.Required && body.Attributes[sa.Name] == nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing required argument",
				Detail:   fmt.Sprintf("The argument %q is required, but no definition was found.", sa.Name),
				Subject:  blockRange(body).Ptr(),
			})
		}
	}
	counts := map[string]int{}
	for _, b := range body.Blocks {
		nb := s.NestedBlock(b.Type)
		if nb == nil {
			detail := fmt.Sprintf("Blocks of type %q are not expected here.", b.Type)
			if s.Attribute(b.Type) != nil {
				detail += fmt.Sprintf(" Did you mean to define argument %q? If so, use the equals sign to assign it a value.", b.Type)
			} else {
				detail += didYouMean(b.Type, names)
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported block type",
				Detail:   detail,
				Subject:  b.TypeRange.Ptr(),
			})
			continue
		}
		counts[b.Type]++
		if len(b.Labels) != len(nb.Labels) {
			subject := b.OpenBraceRange
			if len(b.Labels) > len(nb.Labels) {
				subject = b.LabelRanges[len(nb.Labels)]
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Wrong number of labels for " + b.Type,
				Detail:   fmt.Sprintf("A %s block takes %s.", b.Type, labelCount(len(nb.Labels))),
				Subject:  subject.Ptr(),
				Context:  hcl.RangeBetween(b.TypeRange, b.OpenBraceRange).Ptr(),
			})
			continue
		}
		diags = append(diags, checkBody(b.Body, nb.Block, nil)...)
	}
	for _, nb := range s.Blocks {
		n := counts[nb.Name]
		switch {
		case n < nb.MinItems:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Insufficient " + nb.Name + " blocks",
				Detail:   fmt.Sprintf("At least %s required.", blocks(nb.MinItems, nb.Name)),
				Subject:  blockRange(body).Ptr(),
			})
		case nb.MaxItems > 0 && n > nb.MaxItems:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Too many " + nb.Name + " blocks",
				Detail:   fmt.Sprintf("At most %s allowed.", blocks(nb.MaxItems, nb.Name)),
				Subject:  blockRange(body).Ptr(),
			})
		}
	}
	// Report in source order, as a reader meets the mistakes.
	sort.SliceStable(diags, func(i, j int) bool {
		return diags[i].Subject.Start.Byte < diags[j].Subject.Start.Byte
	})
	return diags
}

func blocks(n int, name string) string {
	if n == 1 {
		return fmt.Sprintf("1 %q block is", name)
	}
	return fmt.Sprintf("%d %q blocks are", n, name)
}

// blockRange is where a missing argument is reported: the opening line of
// the block that lacks it.
func blockRange(body *hclsyntax.Body) hcl.Range {
	r := body.SrcRange
	r.End = r.Start
	r.End.Column++
	r.End.Byte++
	return r
}

// decodeBody evaluates a structurally valid body into an object of the
// schema's object type (without "address").
func decodeBody(body *hclsyntax.Body, s *schema.Block, ctx *hcl.EvalContext, sec *secrets) (cty.Value, hcl.Diagnostics) {
	attrs, diags := decodeAttrs(body, s, ctx, sec)
	return cty.ObjectVal(attrs), diags
}

// decodeAttrs is decodeBody's attributes and nested blocks, before they
// become an object.
func decodeAttrs(body *hclsyntax.Body, s *schema.Block, ctx *hcl.EvalContext, sec *secrets) (map[string]cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	attrs := make(map[string]cty.Value, len(s.Attributes)+len(s.Blocks))
	for _, sa := range s.Attributes {
		a := body.Attributes[sa.Name]
		if a == nil || sa.Computed {
			attrs[sa.Name] = defaultValue(sa)
			continue
		}
		v, d := decodeAttr(a, sa, ctx, sec)
		diags = append(diags, d...)
		attrs[sa.Name] = v
	}
	for _, nb := range s.Blocks {
		et := nb.Block.ObjectType()
		if len(nb.Labels) > 0 {
			m := et.AttributeTypes()
			m[nb.Labels[0]] = cty.String
			et = cty.Object(m)
		}
		var elems []cty.Value
		for _, b := range body.Blocks {
			if b.Type != nb.Name || len(b.Labels) != len(nb.Labels) {
				continue
			}
			v, d := decodeBody(b.Body, nb.Block, ctx, sec)
			diags = append(diags, d...)
			if len(nb.Labels) > 0 {
				m := v.AsValueMap()
				if m == nil {
					m = map[string]cty.Value{}
				}
				m[nb.Labels[0]] = cty.StringVal(b.Labels[0])
				v = cty.ObjectVal(m)
			}
			elems = append(elems, v)
		}
		if len(elems) == 0 {
			attrs[nb.Name] = cty.ListValEmpty(et)
			continue
		}
		// Through a tuple, so blocks whose "any" attributes differ in type
		// become an error rather than a cty.ListVal panic.
		list, err := convert.Convert(cty.TupleVal(elems), cty.List(et))
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Inconsistent " + nb.Name + " blocks",
				Detail:   "All " + nb.Name + " blocks must have values of the same types: " + err.Error() + ".",
				Subject:  blockRange(body).Ptr(),
			})
			list = cty.UnknownVal(cty.List(et))
		}
		attrs[nb.Name] = list
	}
	return attrs, diags
}

func defaultValue(sa *schema.Attribute) cty.Value {
	if sa.Computed || sa.Default == cty.NilVal {
		return cty.NullVal(sa.Type)
	}
	if v, ok := defaults.Load(sa); ok {
		return v.(cty.Value)
	}
	v, err := convert.Convert(sa.Default, sa.Type)
	if err != nil {
		v = cty.NullVal(sa.Type)
	}
	defaults.Store(sa, v)
	return v
}

// defaults holds each schema attribute's converted default: a national
// configuration has thousands of instances of a few schemas, and the
// conversion, done per instance, took 0.12 CPU-s of a 7,000-site plan.
// Schemas are built once per process, so this stays small; cty values are
// immutable, so instances may share them.
var defaults sync.Map // *schema.Attribute -> cty.Value

// decodeAttr evaluates one attribute, converts it to the declared type,
// applies the default to null and runs the schema's Check on known values.
func decodeAttr(a *hclsyntax.Attribute, sa *schema.Attribute, ctx *hcl.EvalContext, sec *secrets) (cty.Value, hcl.Diagnostics) {
	if !sa.Sensitive && sec != nil {
		// A sensitive variable may only flow into a sensitive attribute:
		// anything else is printed in plans and kept in state in clear.
		for _, tr := range a.Expr.Variables() {
			if tr.RootName() != "var" || len(tr) < 2 {
				continue
			}
			if ga, ok := tr[1].(hcl.TraverseAttr); ok && sec.names[ga.Name] {
				return cty.UnknownVal(sa.Type), hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Sensitive variable in a non-sensitive attribute",
					Detail: fmt.Sprintf("var.%s is marked sensitive, but %q is not: im1 would show its value in plans and keep it in state in clear. Use it only in sensitive attributes, or drop sensitive = true from the variable.",
						ga.Name, sa.Name),
					Subject: tr.SourceRange().Ptr(),
				}}
			}
		}
	}
	v, diags := a.Expr.Value(ctx)
	if diags.HasErrors() {
		return cty.UnknownVal(sa.Type), sec.redact(diags, a.Expr, sa.Sensitive, v)
	}
	cv, err := convert.Convert(v, sa.Type)
	if err != nil {
		diags = append(diags, &hcl.Diagnostic{
			Severity:    hcl.DiagError,
			Summary:     "Incorrect attribute value type",
			Detail:      fmt.Sprintf("Inappropriate value for attribute %q: %s.", sa.Name, convertError(err)),
			Subject:     a.Expr.Range().Ptr(),
			Expression:  a.Expr,
			EvalContext: ctx,
		})
		return cty.UnknownVal(sa.Type), sec.redact(diags, a.Expr, sa.Sensitive, v)
	}
	if cv.IsNull() {
		if sa.Required {
			diags = append(diags, &hcl.Diagnostic{
				Severity:    hcl.DiagError,
				Summary:     "Missing required argument",
				Detail:      fmt.Sprintf("The argument %q is required, but it was set to null.", sa.Name),
				Subject:     a.Expr.Range().Ptr(),
				Expression:  a.Expr,
				EvalContext: ctx,
			})
			return cty.UnknownVal(sa.Type), sec.redact(diags, a.Expr, sa.Sensitive, v)
		}
		return defaultValue(sa), diags
	}
	if sa.Check != nil && cv.IsWhollyKnown() {
		if err := sa.Check(cv); err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity:    hcl.DiagError,
				Summary:     "Invalid value for " + sa.Name,
				Detail:      err.Error(),
				Subject:     a.Expr.Range().Ptr(),
				Expression:  a.Expr,
				EvalContext: ctx,
			})
		}
	}
	return cv, sec.redact(diags, a.Expr, sa.Sensitive, v)
}

// convertError renders a cty conversion error with its path, as Terraform
// does ("attribute \"port\": a number is required").
func convertError(err error) string {
	if pe, ok := err.(cty.PathError); ok && len(pe.Path) > 0 {
		return pathString(pe.Path) + ": " + pe.Error()
	}
	return err.Error()
}

func pathString(p cty.Path) string {
	var s string
	for i, step := range p {
		switch st := step.(type) {
		case cty.GetAttrStep:
			if i == 0 {
				s += "attribute " + strconv.Quote(st.Name)
			} else {
				s += "." + st.Name
			}
		case cty.IndexStep:
			key := "?"
			switch {
			case !st.Key.IsKnown() || st.Key.IsNull():
			case st.Key.Type() == cty.String:
				key = strconv.Quote(st.Key.AsString())
			case st.Key.Type() == cty.Number:
				key = st.Key.AsBigFloat().Text('f', -1)
			}
			if i == 0 {
				s = "element " + key
			} else {
				s += "[" + key + "]"
			}
		}
	}
	return s
}
