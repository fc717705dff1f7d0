package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/im1dev/im1/schema"
)

// Instance is one evaluated instance of a resource: the resource itself, or
// one for_each key of it.
type Instance struct {
	Resource *Resource
	// Key is the for_each key, "" when the resource has no for_each.
	Key string
	// Addr is type.name or type.name["key"].
	Addr string
	// Value is an object of ObjectType(Resource.Schema): configured values
	// converted to their declared types, defaults applied, computed
	// attributes null, nested blocks as lists of objects, and "address".
	Value cty.Value
}

// ObjectType is the type of an instance value: the schema's object type
// plus the implicit "address" attribute.
func ObjectType(s *schema.Block) cty.Type {
	m := s.ObjectType().AttributeTypes()
	m["address"] = cty.String
	return cty.Object(m)
}

// InstanceAddr renders the address of one for_each instance the way
// Terraform does: type.name["key"].
func InstanceAddr(resourceAddr, key string) string {
	return resourceAddr + "[" + strconv.Quote(key) + "]"
}

// maxFileSize bounds what file() reads, so that a stray file("/dev/zero")
// fails instead of exhausting memory.
const maxFileSize = 16 << 20

// Functions returns the functions available in expressions: the cty stdlib
// set Terraform users know, try/can, and file() resolving relative paths
// against dir.
func Functions(dir string) map[string]function.Function {
	return map[string]function.Function{
		"abs":             stdlib.AbsoluteFunc,
		"can":             tryfunc.CanFunc,
		"ceil":            stdlib.CeilFunc,
		"chomp":           stdlib.ChompFunc,
		"chunklist":       stdlib.ChunklistFunc,
		"coalesce":        stdlib.CoalesceFunc,
		"coalescelist":    stdlib.CoalesceListFunc,
		"compact":         stdlib.CompactFunc,
		"concat":          stdlib.ConcatFunc,
		"contains":        stdlib.ContainsFunc,
		"csvdecode":       stdlib.CSVDecodeFunc,
		"distinct":        stdlib.DistinctFunc,
		"element":         stdlib.ElementFunc,
		"file":            fileFunc(dir),
		"flatten":         stdlib.FlattenFunc,
		"floor":           stdlib.FloorFunc,
		"format":          stdlib.FormatFunc,
		"formatdate":      stdlib.FormatDateFunc,
		"formatlist":      stdlib.FormatListFunc,
		"indent":          stdlib.IndentFunc,
		"join":            stdlib.JoinFunc,
		"jsondecode":      stdlib.JSONDecodeFunc,
		"jsonencode":      stdlib.JSONEncodeFunc,
		"keys":            stdlib.KeysFunc,
		"length":          lengthFunc,
		"log":             stdlib.LogFunc,
		"lookup":          stdlib.LookupFunc,
		"lower":           stdlib.LowerFunc,
		"max":             stdlib.MaxFunc,
		"merge":           stdlib.MergeFunc,
		"min":             stdlib.MinFunc,
		"parseint":        stdlib.ParseIntFunc,
		"pow":             stdlib.PowFunc,
		"range":           stdlib.RangeFunc,
		"regex":           stdlib.RegexFunc,
		"regexall":        stdlib.RegexAllFunc,
		"replace":         stdlib.ReplaceFunc,
		"reverse":         stdlib.ReverseListFunc,
		"setintersection": stdlib.SetIntersectionFunc,
		"setproduct":      stdlib.SetProductFunc,
		"setsubtract":     stdlib.SetSubtractFunc,
		"setunion":        stdlib.SetUnionFunc,
		"signum":          stdlib.SignumFunc,
		"slice":           stdlib.SliceFunc,
		"sort":            stdlib.SortFunc,
		"split":           stdlib.SplitFunc,
		"strlen":          stdlib.StrlenFunc,
		"strrev":          stdlib.ReverseFunc,
		"substr":          stdlib.SubstrFunc,
		"timeadd":         stdlib.TimeAddFunc,
		"title":           stdlib.TitleFunc,
		"tobool":          stdlib.MakeToFunc(cty.Bool),
		"tolist":          stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":           stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"tonumber":        stdlib.MakeToFunc(cty.Number),
		"toset":           stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring":        stdlib.MakeToFunc(cty.String),
		"trim":            stdlib.TrimFunc,
		"trimprefix":      stdlib.TrimPrefixFunc,
		"trimspace":       stdlib.TrimSpaceFunc,
		"trimsuffix":      stdlib.TrimSuffixFunc,
		"try":             tryfunc.TryFunc,
		"upper":           stdlib.UpperFunc,
		"values":          stdlib.ValuesFunc,
		"zipmap":          stdlib.ZipmapFunc,
	}
}

// lengthFunc is Terraform's length: of a string (in characters) as well as
// of a collection, which stdlib.LengthFunc alone does not accept.
var lengthFunc = function.New(&function.Spec{
	Description: "Returns the number of elements of a collection or characters of a string.",
	Params: []function.Parameter{{
		Name: "value", Type: cty.DynamicPseudoType, AllowDynamicType: true, AllowUnknown: true,
	}},
	Type: function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if args[0].Type() == cty.String {
			return stdlib.Strlen(args[0])
		}
		return stdlib.Length(args[0])
	},
})

func fileFunc(dir string) function.Function {
	return function.New(&function.Spec{
		Description: "Reads a UTF-8 text file; relative paths are relative to the configuration directory.",
		Params:      []function.Parameter{{Name: "path", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			f, err := os.Open(p)
			if err != nil {
				return cty.UnknownVal(cty.String), function.NewArgErrorf(0, "cannot read %s: %s", args[0].AsString(), unwrapPathError(err))
			}
			defer f.Close()
			if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
				return cty.UnknownVal(cty.String), function.NewArgErrorf(0, "%s is not a regular file", args[0].AsString())
			}
			b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
			switch {
			case err != nil:
				return cty.UnknownVal(cty.String), function.NewArgErrorf(0, "cannot read %s: %s", args[0].AsString(), unwrapPathError(err))
			case len(b) > maxFileSize:
				return cty.UnknownVal(cty.String), function.NewArgErrorf(0, "%s is larger than %d bytes", args[0].AsString(), maxFileSize)
			case !utf8.Valid(b):
				return cty.UnknownVal(cty.String), function.NewArgErrorf(0, "contents of %s are not valid UTF-8", args[0].AsString())
			}
			return cty.StringVal(string(b)), nil
		},
	})
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// Eval evaluates every instance of r. lookup returns the current value of
// another resource by "type.name": an object for a resource without
// for_each, a map (or object) of objects keyed by for_each key for one with
// it. Values may be unknown; a nil lookup treats every reference as unknown.
func (c *Config) Eval(r *Resource, lookup func(addr string) cty.Value) ([]*Instance, hcl.Diagnostics) {
	if v := r.validated; v != nil {
		return slices.Clone(v.insts), slices.Clone(v.diags)
	}
	return c.eval(r, lookup, false, nil)
}

// EvalInstance evaluates only the instance of r with the given for_each
// key ("" without for_each), or returns nil when r no longer has it.
// Apply re-evaluates each instance on its own; evaluating all of them for
// each would make an apply over thousands of sites quadratic.
func (c *Config) EvalInstance(r *Resource, key string, lookup func(addr string) cty.Value) (*Instance, hcl.Diagnostics) {
	insts, diags := c.eval(r, lookup, false, &key)
	for _, in := range insts {
		if in.Key == key {
			return in, diags
		}
	}
	return nil, diags
}

// eval is Eval; validate (used by Load) tolerates an unknown for_each by
// evaluating the body once with an unknown each, returning no instances.
// With only, it decodes the body of that for_each key alone.
func (c *Config) eval(r *Resource, lookup func(addr string) cty.Value, validate bool, only *string) ([]*Instance, hcl.Diagnostics) {
	body := r.body
	if body == nil {
		body, _ = r.Body.(*hclsyntax.Body)
	}
	if body == nil || r.Schema == nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Resource not loaded by config.Load", Detail: r.Addr() + " has no native syntax body.", Subject: r.DeclRange.Ptr()}}
	}
	ctx := c.evalContext(r, lookup)
	sec := c.secrets()
	if r.ForEach == nil {
		inst, diags := c.decodeInstance(r, body, "", r.Addr(), ctx, sec)
		return []*Instance{inst}, diags
	}
	fe, diags := r.ForEach.Value(ctx)
	diags = sec.redact(diags, r.ForEach, false)
	if diags.HasErrors() {
		return nil, diags
	}
	items, unknown, d := forEachItems(r.ForEach, fe, validate)
	diags = append(diags, d...)
	if diags.HasErrors() {
		return nil, diags
	}
	if unknown {
		child := ctx.NewChild()
		child.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{
			"key": cty.UnknownVal(cty.String), "value": cty.DynamicVal,
		})}
		_, d := decodeBody(body, r.Schema, child, sec)
		return nil, append(diags, d...)
	}
	if only != nil {
		items = slices.DeleteFunc(items, func(it forEachItem) bool { return it.key != *only })
	}
	out := make([]*Instance, len(items))
	ds := make([]hcl.Diagnostics, len(items))
	// Instances evaluate independently (the context is only read), so a
	// for_each over thousands of practices uses every CPU.
	parallelChunks(len(items), func(i int) {
		it := items[i]
		child := ctx.NewChild()
		child.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{
			"key": cty.StringVal(it.key), "value": it.value,
		})}
		out[i], ds[i] = c.decodeInstance(r, body, it.key, InstanceAddr(r.Addr(), it.key), child, sec)
	})
	for _, d := range ds {
		diags = append(diags, d...)
	}
	return out, diags
}

// decodeInstance decodes a resource body into an instance value, with its
// "address".
func (c *Config) decodeInstance(r *Resource, body *hclsyntax.Body, key, addr string, ctx *hcl.EvalContext, sec *secrets) (*Instance, hcl.Diagnostics) {
	attrs, diags := decodeAttrs(body, r.Schema, ctx, sec)
	attrs["address"] = cty.StringVal(addr)
	return &Instance{Resource: r, Key: key, Addr: addr, Value: cty.ObjectVal(attrs)}, diags
}

// parallelChunks runs fn(0..n-1), in chunks on every CPU when n is large
// enough to pay for the goroutines.
func parallelChunks(n int, fn func(int)) {
	workers := min(runtime.GOMAXPROCS(0), n/128)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += per {
		hi := min(lo+per, n)
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// evalContext exposes var, the functions, and the resources r references
// (only those: building every resource into every context would make a
// configuration of thousands of practices quadratic).
func (c *Config) evalContext(r *Resource, lookup func(string) cty.Value) *hcl.EvalContext {
	vars := map[string]cty.Value{"var": c.varObject()}
	byType := map[string]map[string]cty.Value{}
	for _, ref := range r.Refs {
		typ, name, _ := strings.Cut(ref.Addr, ".")
		v := cty.DynamicVal
		if lookup != nil {
			v = lookup(ref.Addr)
		}
		if v == cty.NilVal {
			v = cty.DynamicVal
		}
		if byType[typ] == nil {
			byType[typ] = map[string]cty.Value{}
		}
		byType[typ][name] = v
	}
	for typ, m := range byType {
		vars[typ] = cty.ObjectVal(m)
	}
	return &hcl.EvalContext{Variables: vars, Functions: c.funcs}
}

func (c *Config) varObject() cty.Value {
	if len(c.VarValues) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(c.VarValues)
}

// unknownLookup stands in for apply-time values while Load validates: every
// referenced resource is an unknown value of its declared type, so attribute
// names are still checked.
func (c *Config) unknownLookup(addr string) cty.Value {
	r := c.byAddr[addr]
	if r == nil {
		return cty.DynamicVal
	}
	t := ObjectType(r.Schema)
	if r.ForEach != nil {
		return cty.UnknownVal(cty.Map(t))
	}
	return cty.UnknownVal(t)
}

type forEachItem struct {
	key   string
	value cty.Value
}

// forEachItems checks a for_each value is a known map, object or set of
// strings and lists its keys in order.
func forEachItems(expr hcl.Expression, v cty.Value, validate bool) ([]forEachItem, bool, hcl.Diagnostics) {
	bad := func(detail string) hcl.Diagnostics {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid for_each argument",
			Detail:   detail,
			Subject:  expr.Range().Ptr(),
		}}
	}
	const want = " A map, or a set of strings, is allowed."
	if v.IsNull() {
		return nil, false, bad("The for_each value is null." + want)
	}
	if !v.IsKnown() || (v.Type().IsSetType() && !v.IsWhollyKnown()) {
		if validate {
			return nil, true, nil
		}
		return nil, false, bad("The for_each value depends on values known only after apply, so the instances it creates cannot be determined. Use a value known before apply, such as a variable or a literal map.")
	}
	t := v.Type()
	var items []forEachItem
	switch {
	case t.IsMapType() || t.IsObjectType():
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			items = append(items, forEachItem{key: k.AsString(), value: ev})
		}
	case t.IsSetType():
		if !t.ElementType().Equals(cty.String) {
			return nil, false, bad(fmt.Sprintf("The for_each set has elements of type %s; only strings can be instance keys.", schema.TypeString(t.ElementType())))
		}
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			if ev.IsNull() {
				return nil, false, bad("The for_each set contains null; instance keys must be strings.")
			}
			items = append(items, forEachItem{key: ev.AsString(), value: ev})
		}
	case t.IsListType() || t.IsTupleType():
		return nil, false, bad("The for_each value is a list; convert it with toset() to use its strings as instance keys." + want)
	default:
		return nil, false, bad("The for_each value is a " + t.FriendlyName() + "." + want)
	}
	return items, false, nil
}
