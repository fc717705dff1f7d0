package config

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/im1dev/im1/schema"
)

// EnvPrefix prefixes environment variables that set input variables.
const EnvPrefix = "IM1_VAR_"

// variableSchema is the shape of a variable block; "type" and "default"
// are any-typed because they are decoded by hand.
var variableSchema = &schema.Block{
	Attributes: []*schema.Attribute{
		{Name: "type", Type: cty.DynamicPseudoType},
		{Name: "default", Type: cty.DynamicPseudoType},
		{Name: "description", Type: cty.String},
		{Name: "sensitive", Type: cty.Bool},
	},
	Blocks: []*schema.NestedBlock{{
		Name: "validation",
		Block: &schema.Block{Attributes: []*schema.Attribute{
			{Name: "condition", Type: cty.Bool, Required: true},
			{Name: "error_message", Type: cty.String, Required: true},
		}},
	}},
}

func (l *loader) variableBlock(b *hclsyntax.Block) {
	if !l.labels(b, []string{"name"}) {
		return
	}
	name := b.Labels[0]
	if prev := l.cfg.Variables[name]; prev != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Duplicate variable declaration",
			Detail:   fmt.Sprintf("A variable named %q was already declared at %s. Variable names must be unique.", name, prev.DeclRange),
			Subject:  b.DefRange().Ptr(),
		})
		return
	}
	diags := checkBody(b.Body, variableSchema, nil)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return
	}
	v := &Variable{Name: name, Type: cty.DynamicPseudoType, DeclRange: b.DefRange()}
	attrs := b.Body.Attributes
	var defaults *typeexpr.Defaults
	if a := attrs["type"]; a != nil {
		ty, defs, diags := typeexpr.TypeConstraintWithDefaults(a.Expr)
		l.diags = append(l.diags, diags...)
		if !diags.HasErrors() {
			v.Type, defaults = ty, defs
		}
	}
	if a := attrs["description"]; a != nil {
		if s, ok := l.constant(a, cty.String); ok && !s.IsNull() {
			v.Description = s.AsString()
		}
	}
	if a := attrs["sensitive"]; a != nil {
		if s, ok := l.constant(a, cty.Bool); ok && !s.IsNull() {
			v.Sensitive = s.True()
		}
	}
	if a := attrs["default"]; a != nil {
		val, diags := a.Expr.Value(nil)
		l.diags = append(l.diags, diags...)
		if !diags.HasErrors() {
			if defaults != nil {
				val = defaults.Apply(val)
			}
			cv, err := convert.Convert(val, v.Type)
			if err != nil {
				l.attempted[name] = true // reported here, not again as missing
				l.diags = append(l.diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid default value for variable",
					Detail:   fmt.Sprintf("This default value is not compatible with the variable's type constraint: %s.", convertError(err)),
					Subject:  a.Expr.Range().Ptr(),
				})
			} else {
				v.Default = cv
			}
		}
	}
	for _, vb := range b.Body.Blocks {
		cond, msg := vb.Body.Attributes["condition"], vb.Body.Attributes["error_message"]
		ok := true
		for _, a := range []*hclsyntax.Attribute{cond, msg} {
			for _, t := range a.Expr.Variables() {
				if n, isVar := varName(t); isVar && n == name {
					continue
				}
				if t.RootName() == "var" || l.opts.Schemas[t.RootName()] != nil || t.RootName() == "each" {
					l.diags = append(l.diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Invalid reference in variable validation",
						Detail:   fmt.Sprintf("The %s for variable %q can only refer to the variable itself, using var.%s.", a.Name, name, name),
						Subject:  t.SourceRange().Ptr(),
					})
					ok = false
				}
			}
		}
		if ok {
			v.validations = append(v.validations, &validation{Condition: cond.Expr, ErrorMessage: msg.Expr, DeclRange: vb.DefRange()})
		}
	}
	l.cfg.Variables[name] = v
	l.varOrder = append(l.varOrder, name)
}

// constant evaluates an attribute that may not reference anything.
func (l *loader) constant(a *hclsyntax.Attribute, ty cty.Type) (cty.Value, bool) {
	val, diags := a.Expr.Value(nil)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return cty.NilVal, false
	}
	cv, err := convert.Convert(val, ty)
	if err != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Incorrect attribute value type",
			Detail:   fmt.Sprintf("Inappropriate value for attribute %q: %s.", a.Name, convertError(err)),
			Subject:  a.Expr.Range().Ptr(),
		})
		return cty.NilVal, false
	}
	return cv, true
}

// varName returns the variable name of a var.NAME traversal.
func varName(t hcl.Traversal) (string, bool) {
	if t.RootName() != "var" || len(t) < 2 {
		return "", false
	}
	a, ok := t[1].(hcl.TraverseAttr)
	return a.Name, ok
}

// variableValues resolves every variable: default, then IM1_VAR_<name>,
// then -var-file and -var in command-line order, each overriding the last;
// then checks required ones are set and runs validations.
func (l *loader) variableValues() {
	for _, name := range l.varOrder {
		l.cfg.VarValues[name] = l.cfg.Variables[name].Default
	}
	l.envValues()
	for _, arg := range l.opts.Vars {
		switch {
		case arg.File != "":
			l.varFile(arg.File)
		default:
			l.varAssign(arg.Assign)
		}
	}
	l.sec = newSecrets(l.cfg)
	for _, name := range l.varOrder {
		v := l.cfg.Variables[name]
		val := l.cfg.VarValues[name]
		if val == cty.NilVal && l.attempted[name] {
			// A value was given but was invalid, which is already reported.
			l.cfg.VarValues[name] = cty.UnknownVal(v.Type)
			continue
		}
		if val == cty.NilVal {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "No value for required variable",
				Detail:   fmt.Sprintf("The variable %q is required, but no value was given. Set it with -var, -var-file or %s%s.", name, EnvPrefix, name),
				Subject:  v.DeclRange.Ptr(),
			})
			l.cfg.VarValues[name] = cty.UnknownVal(v.Type)
			continue
		}
		if val.IsWhollyKnown() {
			l.validate(v, val)
		}
	}
	l.sec = newSecrets(l.cfg)
	l.cfg.sec = l.sec
}

func (l *loader) envValues() {
	environ := l.opts.Environ
	if environ == nil && l.opts.Getenv == nil {
		environ = os.Environ()
	}
	found := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if name, ok := strings.CutPrefix(k, EnvPrefix); ok {
			found[name] = v
		}
	}
	if l.opts.Getenv != nil {
		for _, name := range l.varOrder {
			if v := l.opts.Getenv(EnvPrefix + name); v != "" {
				found[name] = v
			} else if _, ok := found[name]; ok {
				found[name] = v
			}
		}
	}
	// Undeclared IM1_VAR_* are ignored, as Terraform ignores TF_VAR_*: one
	// environment often serves several configurations.
	for _, name := range l.varOrder {
		if raw, ok := found[name]; ok {
			l.rawValue(name, raw, EnvPrefix+name)
		}
	}
}

func (l *loader) varAssign(assign string) {
	name, raw, ok := strings.Cut(assign, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid -var option",
			Detail:   fmt.Sprintf("The given -var option %q is not correctly specified. It must be a variable name and value separated by an equals sign, like -var=\"key=value\".", redactedAssign(assign)),
		})
		return
	}
	if l.cfg.Variables[name] == nil {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Value for undeclared variable",
			Detail:   fmt.Sprintf("A variable named %q was assigned on the command line, but the configuration does not declare a variable of that name.", name) + didYouMean(name, l.varOrder),
		})
		return
	}
	l.rawValue(name, raw, "-var")
}

// redactedAssign keeps only the part before "=": a malformed -var may still
// carry a secret.
func redactedAssign(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// rawValue sets a variable from a string given outside the configuration:
// taken literally for string and untyped variables, otherwise parsed as an
// HCL expression, as Terraform does.
func (l *loader) rawValue(name, raw, source string) {
	l.attempted[name] = true
	v := l.cfg.Variables[name]
	filename := fmt.Sprintf("<value for var.%s from %s>", name, source)
	var val cty.Value
	if v.Type == cty.String || v.Type == cty.DynamicPseudoType {
		val = cty.StringVal(raw)
	} else {
		expr, diags := hclsyntax.ParseExpression([]byte(raw), filename, hcl.InitialPos)
		if !diags.HasErrors() {
			var d hcl.Diagnostics
			val, d = expr.Value(nil)
			diags = append(diags, d...)
		}
		if diags.HasErrors() {
			if v.Sensitive {
				l.diags = append(l.diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid value for input variable",
					Detail:   fmt.Sprintf("The value for var.%s given by %s is not a valid expression. The variable is sensitive, so the details are not shown.", name, source),
				})
				return
			}
			l.cfg.Files[filename] = &hcl.File{Bytes: []byte(raw)}
			l.diags = append(l.diags, diags...)
			return
		}
	}
	l.setValue(v, val, source, nil)
}

// varFile reads a file of name = value attributes.
func (l *loader) varFile(path string) {
	src, err := os.ReadFile(path)
	if err != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Failed to read variables file",
			Detail:   fmt.Sprintf("Given variables file %s does not exist or cannot be read: %s.", path, unwrapPathError(err)),
		})
		return
	}
	f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	l.diags = append(l.diags, diags...)
	if f == nil {
		return
	}
	l.cfg.Files[path] = f
	attrs, diags := f.Body.JustAttributes()
	l.diags = append(l.diags, diags...)
	list := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		list = append(list, a)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Range.Start.Byte < list[j].Range.Start.Byte })
	for _, a := range list {
		v := l.cfg.Variables[a.Name]
		if v == nil {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Value for undeclared variable",
				Detail:   fmt.Sprintf("The variables file assigns %q, but the configuration does not declare a variable of that name.", a.Name) + didYouMean(a.Name, l.varOrder),
				Subject:  a.NameRange.Ptr(),
			})
			continue
		}
		l.attempted[a.Name] = true
		val, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			if v.Sensitive {
				l.diags = append(l.diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid value for input variable",
					Detail:   fmt.Sprintf("The value for var.%s in %s is not a valid constant. The variable is sensitive, so the details are not shown.", a.Name, a.NameRange),
				})
			} else {
				l.diags = append(l.diags, diags...)
			}
			continue
		}
		rng := a.Expr.Range()
		l.setValue(v, val, path, &rng)
	}
}

// setValue converts a given value to the variable's type; a failure is
// reported at rng, or without a range (so no snippet shows the value) for
// sensitive variables.
func (l *loader) setValue(v *Variable, val cty.Value, source string, rng *hcl.Range) {
	cv, err := convert.Convert(val, v.Type)
	if err != nil {
		d := &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for input variable",
			Detail:   fmt.Sprintf("The value for var.%s given by %s is not suitable for the variable declared at %s: %s.", v.Name, source, v.DeclRange, convertError(err)),
			Subject:  rng,
		}
		if v.Sensitive {
			d.Subject = nil
			if rng != nil {
				d.Detail = fmt.Sprintf("The value for var.%s given at %s is not suitable for the variable declared at %s: %s.", v.Name, rng, v.DeclRange, convertError(err))
			}
			d.Detail = redactString(d.Detail, stringLeaves(val))
		}
		l.diags = append(l.diags, d)
		return
	}
	l.cfg.VarValues[v.Name] = cv
}

// validate runs a variable's validation rules on its (known) value.
func (l *loader) validate(v *Variable, val cty.Value) {
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{v.Name: val})},
		Functions: l.cfg.funcs,
	}
	for _, rule := range v.validations {
		res, diags := rule.Condition.Value(ctx)
		if v.Sensitive {
			diags = l.sec.redact(diags, rule.Condition, true)
		}
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() {
			continue
		}
		res, err := convert.Convert(res, cty.Bool)
		if err != nil || res.IsNull() {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid validation result",
				Detail:   "The validation condition must return true or false.",
				Subject:  rule.Condition.Range().Ptr(),
			})
			continue
		}
		if !res.IsKnown() || res.True() {
			continue
		}
		msg := l.errorMessage(v, rule, ctx)
		d := &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail:   fmt.Sprintf("%s\n\nThis was checked by the validation rule at %s.", msg, rule.DeclRange),
			Subject:  rule.Condition.Range().Ptr(),
		}
		if !v.Sensitive {
			d.Expression, d.EvalContext = rule.Condition, ctx
		}
		l.diags = append(l.diags, d)
	}
}

func (l *loader) errorMessage(v *Variable, rule *validation, ctx *hcl.EvalContext) string {
	if v.Sensitive && len(rule.ErrorMessage.Variables()) > 0 {
		return "The error message included a sensitive value, so it will not be displayed."
	}
	mv, diags := rule.ErrorMessage.Value(ctx)
	if !diags.HasErrors() {
		mv, err := convert.Convert(mv, cty.String)
		if err == nil && mv.IsWhollyKnown() && !mv.IsNull() {
			return strings.TrimSpace(mv.AsString())
		}
	}
	return "The error message could not be evaluated."
}

// secrets knows the sensitive variables, so diagnostics can leave out
// their values.
type secrets struct {
	names  map[string]bool
	values []string
}

func newSecrets(c *Config) *secrets {
	s := &secrets{names: map[string]bool{}}
	for name, v := range c.Variables {
		if v.Sensitive {
			s.names[name] = true
			s.values = append(s.values, stringLeaves(c.VarValues[name])...)
		}
	}
	return s
}

// redact strips a diagnostic's expression and context (whose rendering
// would print variable values) and masks known secret strings, when the
// expression references a sensitive variable or force is set.
func (s *secrets) redact(diags hcl.Diagnostics, expr hcl.Expression, force bool, extra ...cty.Value) hcl.Diagnostics {
	if len(diags) == 0 {
		return diags
	}
	tainted := force
	if !tainted && s != nil && expr != nil {
		for _, t := range expr.Variables() {
			if n, ok := varName(t); ok && s.names[n] {
				tainted = true
				break
			}
		}
	}
	if !tainted {
		return diags
	}
	var values []string
	if s != nil {
		values = append(values, s.values...)
	}
	for _, v := range extra {
		values = append(values, stringLeaves(v)...)
	}
	for _, d := range diags {
		d.Expression, d.EvalContext = nil, nil
		d.Summary = redactString(d.Summary, values)
		d.Detail = redactString(d.Detail, values)
	}
	return diags
}

func redactString(s string, values []string) string {
	sort.Slice(values, func(i, j int) bool { return len(values[i]) > len(values[j]) })
	for _, v := range values {
		if len(v) >= 3 {
			s = strings.ReplaceAll(s, v, "(sensitive value)")
		}
	}
	return s
}

// stringLeaves lists the known strings of at least three bytes inside v;
// shorter ones would mask innocent text and cannot be secrets anyway.
func stringLeaves(v cty.Value) []string {
	var out []string
	if v == cty.NilVal {
		return nil
	}
	_ = cty.Walk(v, func(_ cty.Path, x cty.Value) (bool, error) {
		if !x.IsKnown() || x.IsNull() {
			return false, nil
		}
		if x.Type() == cty.String && len(x.AsString()) >= 3 {
			out = append(out, x.AsString())
		}
		return true, nil
	})
	return out
}
