// Package config loads an im1 configuration: every *.im1.hcl file of one
// directory, decoded against the schemas the providers declare. It resolves
// variables, finds the references between blocks (the dependency graph) and
// evaluates blocks into cty values. Errors are returned as hcl.Diagnostics
// with source ranges, never thrown: bad input must not panic.
package config

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/im1dev/im1/schema"
)

// FileSuffix marks configuration files.
const FileSuffix = ".im1.hcl"

// VarArg is one -var-file=PATH (File set) or -var 'name=value' (Assign set),
// kept in command-line order because later ones win.
type VarArg struct {
	File   string
	Assign string
}

// LoadOptions are what Load needs besides the directory.
type LoadOptions struct {
	// Schemas maps each resource block type to its schema.
	Schemas map[string]*schema.Block
	Vars    []VarArg
	// Getenv reads IM1_VAR_<name>; nil means os.Getenv.
	Getenv func(string) string
	// Environ lists the environment to find IM1_VAR_* in; nil means
	// os.Environ() (or, when only Getenv is injected, whatever it returns).
	Environ []string
	// Settled, when set, is called once the im1 block is decoded without
	// errors, before the resources are validated: work that needs only
	// the settings (reading state) can start while validation runs.
	Settled func(*Settings)
}

// Config is a loaded configuration.
type Config struct {
	// Dir is the absolute configuration directory.
	Dir string
	// Files holds every parsed file (configuration and -var-files) by the
	// filename diagnostics use, so snippets can be rendered.
	Files     map[string]*hcl.File
	Settings  *Settings
	Variables map[string]*Variable
	VarValues map[string]cty.Value
	// Resources in declaration order: files sorted by name, then position.
	Resources []*Resource
	// Hash identifies the configuration and variable values; a saved plan
	// records it to detect that either moved.
	Hash string

	byAddr map[string]*Resource
	funcs  map[string]function.Function
	sec    *secrets
}

// Variable is a `variable` block.
type Variable struct {
	Name        string
	Description string
	Type        cty.Type
	// Default is cty.NilVal when the variable is required.
	Default   cty.Value
	Sensitive bool
	DeclRange hcl.Range

	validations []*validation
}

type validation struct {
	Condition    hcl.Expression
	ErrorMessage hcl.Expression
	DeclRange    hcl.Range
}

// Resource is one top-level block of a provider type.
type Resource struct {
	Type, Name string
	Schema     *schema.Block
	// ForEach is nil when absent.
	ForEach   hcl.Expression
	Body      hcl.Body
	DeclRange hcl.Range
	// Refs are the other resources this one references, deduplicated, each
	// with the range of its first reference.
	Refs []Ref

	body   *hclsyntax.Body
	broken bool // structural errors: skip evaluation during Load
	// validated holds the instances Load evaluated, for a resource that
	// references no other: they are what Eval would compute again (its
	// values depend only on variables, fixed once loaded).
	validated *evaluated
}

type evaluated struct {
	insts []*Instance
	diags hcl.Diagnostics
}

// Ref is a reference from one resource to another.
type Ref struct {
	Addr  string // "type.name"
	Range hcl.Range
}

// Addr is the resource address "type.name".
func (r *Resource) Addr() string { return r.Type + "." + r.Name }

// Resource returns the resource with the given "type.name" address or nil.
func (c *Config) Resource(addr string) *Resource { return c.byAddr[addr] }

// Load reads every *.im1.hcl file in dir and decodes it. The returned Config
// is usable for rendering diagnostics even when they contain errors; callers
// must not plan or apply a configuration whose diagnostics have errors.
func Load(dir string, opts LoadOptions) (*Config, hcl.Diagnostics) {
	l := &loader{opts: opts, attempted: map[string]bool{}, cfg: &Config{
		Files:     map[string]*hcl.File{},
		Variables: map[string]*Variable{},
		VarValues: map[string]cty.Value{},
		byAddr:    map[string]*Resource{},
	}}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return l.cfg, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid configuration directory", Detail: err.Error()}}
	}
	l.cfg.Dir = abs
	l.cfg.funcs = Functions(abs)
	l.load(dir)
	return l.cfg, dedupe(l.diags)
}

type loader struct {
	opts      LoadOptions
	cfg       *Config
	diags     hcl.Diagnostics
	names     []string // configuration file names (base), sorted
	sources   map[string][]byte
	settings  *hclsyntax.Block
	varOrder  []string        // declared variables in declaration order
	attempted map[string]bool // variables some source tried to set
	sec       *secrets
}

func (l *loader) load(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Failed to read configuration directory", Detail: err.Error()})
		return
	}
	l.sources = map[string][]byte{}
	var bodies []*hclsyntax.Body
	for _, e := range entries { // os.ReadDir sorts by name
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, FileSuffix) || strings.HasPrefix(name, ".") {
			continue
		}
		filename := filepath.Join(dir, name)
		src, err := os.ReadFile(filename)
		if err != nil {
			l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Failed to read file", Detail: err.Error()})
			continue
		}
		l.names = append(l.names, name)
		l.sources[name] = src
		f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
		l.diags = append(l.diags, diags...)
		if f == nil {
			continue
		}
		l.cfg.Files[filename] = f
		if body, ok := f.Body.(*hclsyntax.Body); ok {
			bodies = append(bodies, body)
		}
	}
	if len(l.names) == 0 && !l.diags.HasErrors() {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No configuration files",
			Detail:   "The directory " + dir + " contains no " + FileSuffix + " files.",
		})
		return
	}
	for _, body := range bodies {
		l.topLevel(body)
	}
	l.variableValues()
	l.decodeSettings()
	if l.opts.Settled != nil && !l.diags.HasErrors() && l.cfg.Settings != nil {
		l.opts.Settled(l.cfg.Settings)
	}
	for _, r := range l.cfg.Resources {
		l.references(r)
	}
	l.cycles()
	l.cfg.Hash = l.hash()
	l.validateResources()
}

// topLevel sorts one file's blocks into settings, variables and resources.
func (l *loader) topLevel(body *hclsyntax.Body) {
	for _, a := range sortedAttributes(body) {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unsupported argument",
			Detail:   "An argument named \"" + a.Name + "\" is not expected at the top level; arguments belong inside a block.",
			Subject:  a.NameRange.Ptr(),
		})
	}
	for _, b := range body.Blocks {
		switch {
		case b.Type == "im1":
			l.settingsBlock(b)
		case b.Type == "variable":
			l.variableBlock(b)
		case l.opts.Schemas[b.Type] != nil:
			l.resourceBlock(b, l.opts.Schemas[b.Type])
		default:
			known := []string{"im1", "variable"}
			for t := range l.opts.Schemas {
				known = append(known, t)
			}
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported block type",
				Detail:   "Blocks of type \"" + b.Type + "\" are not expected here." + didYouMean(b.Type, known),
				Subject:  b.TypeRange.Ptr(),
			})
		}
	}
}

func (l *loader) settingsBlock(b *hclsyntax.Block) {
	if l.settings != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Duplicate im1 block",
			Detail:   "Only one im1 block is allowed; another was declared at " + l.settings.DefRange().String() + ".",
			Subject:  b.DefRange().Ptr(),
		})
		return
	}
	if !l.labels(b, nil) {
		return
	}
	l.settings = b
}

// labels checks a block has exactly the named labels, each a valid name.
func (l *loader) labels(b *hclsyntax.Block, want []string) bool {
	if len(b.Labels) < len(want) {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing " + want[len(b.Labels)] + " for " + b.Type,
			Detail:   "All " + b.Type + " blocks must have " + labelCount(len(want)) + ": " + strings.Join(want, ", ") + ".",
			Subject:  b.OpenBraceRange.Ptr(),
			Context:  hcl.RangeBetween(b.TypeRange, b.OpenBraceRange).Ptr(),
		})
		return false
	}
	if len(b.Labels) > len(want) {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Extraneous label for " + b.Type,
			Detail:   "Only " + labelCount(len(want)) + " expected for " + b.Type + " blocks.",
			Subject:  b.LabelRanges[len(want)].Ptr(),
			Context:  hcl.RangeBetween(b.TypeRange, b.OpenBraceRange).Ptr(),
		})
		return false
	}
	ok := true
	for i, label := range b.Labels {
		if !validName(label) {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid " + want[i],
				Detail:   "A " + want[i] + " must start with a letter or underscore and may contain only letters, digits, underscores, and dashes.",
				Subject:  b.LabelRanges[i].Ptr(),
			})
			ok = false
		}
	}
	return ok
}

func labelCount(n int) string {
	switch n {
	case 0:
		return "no labels"
	case 1:
		return "1 label"
	}
	return string(rune('0'+n)) + " labels"
}

// validName is ^[A-Za-z_][A-Za-z0-9_-]*$; ODS codes such as A81001 qualify.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func (l *loader) resourceBlock(b *hclsyntax.Block, s *schema.Block) {
	if !l.labels(b, []string{"name"}) {
		return
	}
	r := &Resource{
		Type:      b.Type,
		Name:      b.Labels[0],
		Schema:    s,
		Body:      b.Body,
		DeclRange: b.DefRange(),
		body:      b.Body,
	}
	if prev := l.cfg.byAddr[r.Addr()]; prev != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Duplicate " + r.Type + " block",
			Detail:   r.Addr() + " was already declared at " + prev.DeclRange.String() + ". Each " + r.Type + " must have a unique name.",
			Subject:  r.DeclRange.Ptr(),
		})
		return
	}
	if fe := b.Body.Attributes["for_each"]; fe != nil {
		if s.ForEach {
			r.ForEach = fe.Expr
		} else {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported argument",
				Detail:   "The for_each argument is not supported on " + r.Type + " blocks.",
				Subject:  fe.NameRange.Ptr(),
			})
			r.broken = true
		}
	}
	before := len(l.diags)
	l.diags = append(l.diags, checkBody(b.Body, s, map[string]bool{"for_each": true})...)
	if l.diags[before:].HasErrors() {
		r.broken = true
	}
	l.cfg.Resources = append(l.cfg.Resources, r)
	l.cfg.byAddr[r.Addr()] = r
}

// hash covers the configuration files (by base name, sorted) and the
// canonical JSON of every variable value, each length-prefixed so that no
// two different inputs share a byte stream.
func (l *loader) hash() string {
	h := sha256.New()
	put := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, name := range l.names {
		put([]byte(name))
		put(l.sources[name])
	}
	names := make([]string, 0, len(l.cfg.VarValues))
	for n := range l.cfg.VarValues {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		put([]byte(n))
		v := l.cfg.VarValues[n]
		if !v.IsWhollyKnown() {
			put([]byte("(unknown)"))
			continue
		}
		j, err := ctyjson.Marshal(v, cty.DynamicPseudoType)
		if err != nil {
			put([]byte(err.Error()))
			continue
		}
		put(j)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sortedAttributes(body *hclsyntax.Body) []*hclsyntax.Attribute {
	out := make([]*hclsyntax.Attribute, 0, len(body.Attributes))
	for _, a := range body.Attributes {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SrcRange.Start.Byte < out[j].SrcRange.Start.Byte })
	return out
}

// dedupe drops repeated diagnostics, which for_each instances evaluated
// during validation would otherwise report once per key.
func dedupe(diags hcl.Diagnostics) hcl.Diagnostics {
	seen := map[string]bool{}
	var out hcl.Diagnostics
	for _, d := range diags {
		k := d.Summary + "\x00" + d.Detail
		if d.Subject != nil {
			k += "\x00" + d.Subject.String()
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, d)
	}
	return out
}
