package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// writeDir creates a configuration directory from name -> content.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustLoad(t *testing.T, dir string, opts LoadOptions) *Config {
	t.Helper()
	if opts.Schemas == nil {
		opts.Schemas = testSchemas()
	}
	if opts.Environ == nil {
		opts.Environ = []string{}
	}
	cfg, diags := Load(dir, opts)
	if diags.HasErrors() {
		t.Fatalf("Load: %s", render(t, cfg.Files, diags))
	}
	return cfg
}

func TestVariablePrecedence(t *testing.T) {
	const main = `
variable "v" {
  type    = number
  default = 1
}
schedule "s" {
  frequency = tostring(var.v)
}
`
	tests := []struct {
		name    string
		environ []string
		getenv  map[string]string
		vars    []VarArg
		want    int64
	}{
		{name: "default", want: 1},
		{name: "env", environ: []string{"IM1_VAR_v=2"}, want: 2},
		{name: "injected getenv", getenv: map[string]string{"IM1_VAR_v": "3"}, want: 3},
		{name: "file over env", environ: []string{"IM1_VAR_v=2"}, vars: []VarArg{{File: "a.vars"}}, want: 10},
		{name: "var over file", vars: []VarArg{{File: "a.vars"}, {Assign: "v=4"}}, want: 4},
		{name: "later file over var", vars: []VarArg{{Assign: "v=4"}, {File: "b.vars"}}, want: 20},
		{name: "last var wins", vars: []VarArg{{Assign: "v=4"}, {Assign: "v = 5"}}, want: 5},
	}
	dir := writeDir(t, map[string]string{"main.im1.hcl": main, "a.vars": "v = 10\n", "b.vars": "v = 20\n"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := LoadOptions{Environ: tt.environ}
			if tt.getenv != nil {
				opts.Environ = nil
				opts.Getenv = func(k string) string { return tt.getenv[k] }
			}
			for _, v := range tt.vars {
				if v.File != "" {
					v.File = filepath.Join(dir, v.File)
				}
				opts.Vars = append(opts.Vars, v)
			}
			cfg := mustLoad(t, dir, opts)
			if got := cfg.VarValues["v"]; !got.RawEquals(cty.NumberIntVal(tt.want)) {
				t.Errorf("v = %#v, want %d", got, tt.want)
			}
		})
	}
}

func TestOrder(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"a.im1.hcl": `
extract "e" {
  source   = emis_site.s
  schedule = schedule.d
}
schedule "d" { frequency = "daily" }
`,
		"b.im1.hcl": `
emis_site "s" {
  host          = "h"
  organisations = [organisation.o.ods]
}
organisation "o" { ods = "A81001" }
key "k" {}
`,
	})
	cfg := mustLoad(t, dir, LoadOptions{})
	var got []string
	for _, r := range cfg.Order() {
		got = append(got, r.Addr())
	}
	want := []string{"schedule.d", "organisation.o", "emis_site.s", "extract.e", "key.k"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Order = %v, want %v", got, want)
	}
	e := cfg.Resource("extract.e")
	if len(e.Refs) != 2 || e.Refs[0].Addr != "emis_site.s" || e.Refs[0].Range.Start.Line != 3 {
		t.Errorf("extract refs = %+v", e.Refs)
	}
	if cfg.Resource("nope.x") != nil {
		t.Error("Resource of unknown address is not nil")
	}
}

func TestEvalUnknown(t *testing.T) {
	dir := writeDir(t, map[string]string{"main.im1.hcl": `
organisation "o" { ods = "A81001" }
key "k" {}
emis_site "s" {
  host           = "h"
  organisations  = [organisation.o.ods]
  recipient_keys = [key.k.fingerprint]
}
extract "per_key" {
  for_each = toset([key.k.fingerprint])
  source   = emis_site.s
}
`})
	cfg := mustLoad(t, dir, LoadOptions{})
	lookup := func(addr string) cty.Value {
		switch addr {
		case "key.k":
			return cty.ObjectVal(map[string]cty.Value{
				"address": cty.StringVal("key.k"), "algorithm": cty.StringVal("rsa4096"),
				"fingerprint": cty.UnknownVal(cty.String), "passphrase_env": cty.NullVal(cty.String),
			})
		case "organisation.o":
			return cty.UnknownVal(ObjectType(cfg.Resource(addr).Schema))
		}
		return cty.DynamicVal
	}
	insts, diags := cfg.Eval(cfg.Resource("emis_site.s"), lookup)
	if diags.HasErrors() || len(insts) != 1 {
		t.Fatalf("Eval: %v", diags)
	}
	v := insts[0].Value
	if insts[0].Addr != "emis_site.s" || insts[0].Key != "" {
		t.Errorf("instance %q key %q", insts[0].Addr, insts[0].Key)
	}
	if v.GetAttr("host").AsString() != "h" || v.GetAttr("port").AsBigFloat().String() != "22" {
		t.Errorf("known attributes wrong: %#v", v)
	}
	if v.GetAttr("organisations").IsWhollyKnown() || v.GetAttr("recipient_keys").IsWhollyKnown() {
		t.Errorf("references to unknown values became known: %#v", v)
	}
	_, diags = cfg.Eval(cfg.Resource("extract.per_key"), lookup)
	if !diags.HasErrors() || !strings.Contains(diags[0].Detail, "for_each value depends on values known only after apply") {
		t.Errorf("unknown for_each: %v", diags)
	}
}

func TestEvalForEachKeys(t *testing.T) {
	dir := writeDir(t, map[string]string{"main.im1.hcl": `
organisation "p" {
  for_each = { B81001 = "b", A81001 = "a" }
  ods      = each.key
  name     = "${each.value}-${each.key}"
}
`})
	cfg := mustLoad(t, dir, LoadOptions{})
	insts, diags := cfg.Eval(cfg.Resource("organisation.p"), nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var got []string
	for _, in := range insts {
		got = append(got, in.Addr+"="+in.Value.GetAttr("name").AsString()+"@"+in.Value.GetAttr("address").AsString())
	}
	want := []string{
		`organisation.p["A81001"]=a-A81001@organisation.p["A81001"]`,
		`organisation.p["B81001"]=b-B81001@organisation.p["B81001"]`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("instances = %v, want %v", got, want)
	}
}

// TestEvalInstance: one instance is evaluated alone (another key's body,
// which would fail, is not decoded), and a key no longer declared is nil.
func TestEvalInstance(t *testing.T) {
	dir := writeDir(t, map[string]string{"main.im1.hcl": `
organisation "q" {
  ods  = "C81001"
  name = "q"
}
organisation "p" {
  for_each = { A81001 = "a", B81001 = "b" }
  ods      = each.key
  name     = each.key == "B81001" ? tostring(tonumber(organisation.q.name)) : "${each.value}-${each.key}"
}
`})
	cfg := mustLoad(t, dir, LoadOptions{})
	r := cfg.Resource("organisation.p")
	q := cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("q")}) // tonumber fails on it
	lookup := func(string) cty.Value { return q }
	in, diags := cfg.EvalInstance(r, "A81001", lookup)
	if diags.HasErrors() || in == nil || in.Addr != `organisation.p["A81001"]` || in.Value.GetAttr("name").AsString() != "a-A81001" {
		t.Fatalf("EvalInstance(A81001) = %+v, %v", in, diags)
	}
	if _, diags := cfg.Eval(r, lookup); !diags.HasErrors() {
		t.Error("evaluating every instance should reach B81001's failing body")
	}
	if in, diags := cfg.EvalInstance(r, "C81001", lookup); in != nil || diags.HasErrors() {
		t.Errorf("EvalInstance(C81001) = %+v, %v; want nil", in, diags)
	}
}

func TestSettings(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		dir := writeDir(t, map[string]string{"main.im1.hcl": `key "k" {}`})
		cfg := mustLoad(t, dir, LoadOptions{})
		s := cfg.Settings
		want := &Settings{
			StatePath: filepath.Join(cfg.Dir, ".im1/state.db"),
			Landing:   filepath.Join(cfg.Dir, "landing"),
			Archive:   filepath.Join(cfg.Dir, "archive"),
			Handoff:   filepath.Join(cfg.Dir, "handoff"),
			Zone:      s.Zone,
			FileMode:  0o640, DirMode: 0o750,
		}
		if !reflect.DeepEqual(s, want) || s.Zone.String() != "Europe/London" || !filepath.IsAbs(cfg.Dir) {
			t.Errorf("settings = %+v", s)
		}
		// reconcile starts reading this file before the configuration
		// is parsed, and keeps the read only if the two agree.
		t.Chdir(filepath.Dir(dir))
		for _, d := range []string{dir, filepath.Base(dir), "./" + filepath.Base(dir) + "/"} {
			if got, err := DefaultStatePath(d); err != nil || got != s.StatePath {
				t.Errorf("DefaultStatePath(%q) = %q, %v; want %q", d, got, err, s.StatePath)
			}
		}
	})
	t.Run("configured", func(t *testing.T) {
		dir := writeDir(t, map[string]string{"main.im1.hcl": `
variable "dsn" {
  sensitive = true
  default   = "postgres://x"
}
im1 {
  state_path   = "/var/lib/im1/state.db"
  postgres_dsn = var.dsn
  landing_dir  = "data/landing"
  zone         = "UTC"
  file_mode    = "0600"
  dir_mode     = "0700"
}
`})
		s := mustLoad(t, dir, LoadOptions{}).Settings
		if s.StatePath != "/var/lib/im1/state.db" || s.PostgresDSN != "postgres://x" ||
			s.Landing != filepath.Join(dir, "data/landing") || s.Zone != time.UTC ||
			s.FileMode != 0o600 || s.DirMode != 0o700 || s.DeclRange.Start.Line != 6 {
			t.Errorf("settings = %+v", s)
		}
	})
}

func TestHash(t *testing.T) {
	dir := writeDir(t, map[string]string{"main.im1.hcl": `
variable "v" { default = "a" }
schedule "s" { frequency = var.v }
`})
	h := func(vars ...VarArg) string { return mustLoad(t, dir, LoadOptions{Vars: vars}).Hash }
	a, a2, b := h(), h(), h(VarArg{Assign: "v=b"})
	if a != a2 || a == b || len(a) != 64 {
		t.Errorf("hashes %s %s %s", a, a2, b)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.im1.hcl"), []byte(`
variable "v" { default = "a" }
schedule "s" { frequency = var.v } # changed
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if h() == a {
		t.Error("hash ignores file contents")
	}
}

func TestFormatDir(t *testing.T) {
	const messy = "organisation \"A81001\" {\nods=\"A81001\"\n    name = \"x\"\n}\n"
	const tidy = "organisation \"A81001\" {\n  ods  = \"A81001\"\n  name = \"x\"\n}\n"
	if got := string(Format([]byte(messy))); got != tidy {
		t.Fatalf("Format = %q, want %q", got, tidy)
	}
	dir := writeDir(t, map[string]string{
		"a.im1.hcl":   messy,
		"b.im1.hcl":   tidy,
		"c.txt":       messy,
		"bad.im1.hcl": "key \"k\" {\n",
	})
	changed, diags := FormatDir(dir, false)
	if !reflect.DeepEqual(changed, []string{filepath.Join(dir, "a.im1.hcl")}) {
		t.Errorf("check: changed = %v", changed)
	}
	if !diags.HasErrors() || diags[0].Subject.Filename != filepath.Join(dir, "bad.im1.hcl") {
		t.Errorf("check: diags = %v", diags)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.im1.hcl")); string(b) != messy {
		t.Error("check mode wrote a file")
	}
	if changed, _ = FormatDir(dir, true); len(changed) != 1 {
		t.Errorf("write: changed = %v", changed)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.im1.hcl")); string(b) != tidy {
		t.Errorf("write: a.im1.hcl = %q", b)
	}
	if changed, _ = FormatDir(dir, false); len(changed) != 0 {
		t.Errorf("after write: changed = %v", changed)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "c.txt")); string(b) != messy {
		t.Error("a non-configuration file was formatted")
	}
}

func TestDiagnosticsJSON(t *testing.T) {
	dir := writeDir(t, map[string]string{"main.im1.hcl": "organisation \"A81001\" {\n  ods = \"bad\"\n}\n"})
	_, diags := Load(dir, LoadOptions{Schemas: testSchemas(), Environ: []string{}})
	diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "No range"})
	b, err := DiagnosticsJSON(diags)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d diagnostics: %s", len(got), b)
	}
	want := map[string]any{
		"severity": "error",
		"summary":  "Invalid value for ods",
		"detail":   `"bad" is not an ODS practice code (a letter and five digits)`,
		"range": map[string]any{
			"filename": filepath.Join(dir, "main.im1.hcl"),
			"start":    map[string]any{"line": 2.0, "column": 9.0, "byte": 32.0},
			"end":      map[string]any{"line": 2.0, "column": 14.0, "byte": 37.0},
		},
		"snippet": map[string]any{
			"context":                `organisation "A81001"`,
			"code":                   `  ods = "bad"`,
			"start_line":             2.0,
			"highlight_start_offset": 8.0,
			"highlight_end_offset":   13.0,
		},
	}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("diagnostic =\n%#v\nwant\n%#v", got[0], want)
	}
	if got[1]["severity"] != "warning" || got[1]["range"] != nil || got[1]["snippet"] != nil {
		t.Errorf("rangeless warning = %v", got[1])
	}
}

// TestEvalManyInstances: a for_each large enough to be evaluated in
// parallel gives the instances, and the diagnostics, in key order, each the
// same as evaluating that instance alone.
func TestEvalManyInstances(t *testing.T) {
	var m strings.Builder
	const n = 1000
	for i := 0; i < n; i++ {
		v := "ok"
		if i%7 == 3 {
			v = "bad" // tonumber fails
		}
		fmt.Fprintf(&m, "    P%05d = %q\n", i, v)
	}
	dir := writeDir(t, map[string]string{"main.im1.hcl": `
variable "m" {
  type = map(string)
  default = {
` + m.String() + `  }
}
organisation "q" {
  ods  = "C81001"
  name = "7"
}
organisation "p" {
  for_each = var.m
  ods      = "A81001"
  name     = each.value == "bad" ? tostring(tonumber(each.key)) : "${organisation.q.name}-${each.key}"
}
`})
	cfg, _ := Load(dir, LoadOptions{Schemas: testSchemas(), Environ: []string{}})
	r := cfg.Resource("organisation.p")
	q := cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("7")})
	lookup := func(string) cty.Value { return q }
	insts, diags := cfg.Eval(r, lookup)
	if len(insts) != n {
		t.Fatalf("%d instances, want %d", len(insts), n)
	}
	var wantDiags hcl.Diagnostics
	for i, in := range insts {
		key := fmt.Sprintf("P%05d", i)
		one, d := cfg.EvalInstance(r, key, lookup)
		wantDiags = append(wantDiags, d...)
		if in.Key != key || one == nil || !in.Value.RawEquals(one.Value) {
			t.Fatalf("instance %d: %s = %#v, alone %#v", i, in.Key, in.Value, one)
		}
	}
	if len(diags) != len(wantDiags) || len(diags) != (n+3)/7 {
		t.Fatalf("%d diagnostics, %d evaluating alone, want %d", len(diags), len(wantDiags), (n+3)/7)
	}
	for i := range diags {
		if diags[i].Error() != wantDiags[i].Error() {
			t.Fatalf("diagnostic %d: %s, alone %s", i, diags[i].Error(), wantDiags[i].Error())
		}
	}
}
