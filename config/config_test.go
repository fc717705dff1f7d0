package config

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/im1dev/im1/schema"
)

var update = flag.Bool("update", false, "rewrite golden files")

var odsRE = regexp.MustCompile(`^[A-Z][0-9]{5}$`)

// testSchemas are small stand-ins for the provider schemas.
func testSchemas() map[string]*schema.Block {
	str := func(name string, required bool) *schema.Attribute {
		return &schema.Attribute{Name: name, Type: cty.String, Required: required}
	}
	return map[string]*schema.Block{
		"organisation": {
			ForEach: true,
			Attributes: []*schema.Attribute{
				{Name: "ods", Type: cty.String, Required: true, Check: func(v cty.Value) error {
					if !odsRE.MatchString(v.AsString()) {
						return fmt.Errorf("%q is not an ODS practice code (a letter and five digits)", v.AsString())
					}
					return nil
				}},
				str("name", false),
				{Name: "supplier", Type: cty.String, Default: cty.StringVal("emis")},
			},
		},
		"key": {
			Attributes: []*schema.Attribute{
				{Name: "algorithm", Type: cty.String, Default: cty.StringVal("rsa4096")},
				{Name: "fingerprint", Type: cty.String, Computed: true},
				str("passphrase_env", false),
			},
		},
		"emis_site": {
			Attributes: []*schema.Attribute{
				str("host", true),
				{Name: "port", Type: cty.Number, Default: cty.NumberIntVal(22)},
				{Name: "password", Type: cty.String, Sensitive: true},
				{Name: "organisations", Type: cty.List(cty.String)},
				{Name: "recipient_keys", Type: cty.List(cty.String)},
				str("host_key", false),
			},
		},
		"dataset": {
			Attributes: []*schema.Attribute{str("ig_approval", false)},
			Blocks: []*schema.NestedBlock{{
				Name:   "table",
				Labels: []string{"name"},
				Block: &schema.Block{Attributes: []*schema.Attribute{
					{Name: "fields", Type: cty.List(cty.String)},
				}},
				MinItems: 1,
			}},
		},
		"schedule": {
			Attributes: []*schema.Attribute{str("frequency", true), str("start", false)},
		},
		"extract": {
			ForEach: true,
			Attributes: []*schema.Attribute{
				{Name: "source", Type: cty.DynamicPseudoType, Required: true},
				{Name: "dataset", Type: cty.DynamicPseudoType},
				{Name: "schedule", Type: cty.DynamicPseudoType},
			},
		},
	}
}

// caseOptions reads a case's optional "args" file: lines of
// `var NAME=VALUE`, `var-file FILE` (relative to the case) or
// `env NAME=VALUE`.
func caseOptions(t *testing.T, dir string) LoadOptions {
	t.Helper()
	opts := LoadOptions{Schemas: testSchemas(), Environ: []string{}}
	f, err := os.Open(filepath.Join(dir, "args"))
	if errors.Is(err, os.ErrNotExist) {
		return opts
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		kind, arg, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "var":
			opts.Vars = append(opts.Vars, VarArg{Assign: arg})
		case "var-file":
			opts.Vars = append(opts.Vars, VarArg{File: filepath.Join(dir, arg)})
		case "env":
			opts.Environ = append(opts.Environ, arg)
		case "":
		default:
			t.Fatalf("%s/args: unknown line %q", dir, sc.Text())
		}
	}
	return opts
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./config -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test ./config -update to accept)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func render(t *testing.T, files map[string]*hcl.File, diags hcl.Diagnostics) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, files, diags, 80, false); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func caseDirs(t *testing.T, kind string) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("testdata", kind, "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no %s cases: %v", kind, err)
	}
	return dirs
}

// secretsInTestdata must never appear in rendered diagnostics.
var secretsInTestdata = []string{"hunter2-secret", "s3cr3t-dsn"}

func TestInvalid(t *testing.T) {
	for _, dir := range caseDirs(t, "invalid") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			cfg, diags := Load(dir, caseOptions(t, dir))
			if !diags.HasErrors() {
				t.Fatalf("no errors; diagnostics: %v", diags)
			}
			got := render(t, cfg.Files, diags)
			for _, s := range secretsInTestdata {
				if bytes.Contains(got, []byte(s)) {
					t.Errorf("diagnostics show sensitive value %q:\n%s", s, got)
				}
			}
			js, err := DiagnosticsJSON(diags)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secretsInTestdata {
				if bytes.Contains(js, []byte(s)) {
					t.Errorf("JSON diagnostics show sensitive value %q", s)
				}
			}
			golden(t, filepath.Join(dir, "want.txt"), got)
		})
	}
}

// TestValid loads each valid case, evaluates it in dependency order with
// each resource seeing the values of those before it, and compares the
// instances with want.txt.
func TestValid(t *testing.T) {
	for _, dir := range caseDirs(t, "valid") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			cfg, diags := Load(dir, caseOptions(t, dir))
			if len(diags) > 0 {
				t.Fatalf("diagnostics:\n%s", render(t, cfg.Files, diags))
			}
			var out bytes.Buffer
			values := map[string]cty.Value{}
			for _, r := range cfg.Order() {
				insts, diags := cfg.Eval(r, func(addr string) cty.Value { return values[addr] })
				if len(diags) > 0 {
					t.Fatalf("eval %s:\n%s", r.Addr(), render(t, cfg.Files, diags))
				}
				if r.ForEach != nil {
					m := map[string]cty.Value{}
					for _, in := range insts {
						m[in.Key] = in.Value
					}
					values[r.Addr()] = cty.ObjectVal(m)
				} else {
					values[r.Addr()] = insts[0].Value
				}
				for _, in := range insts {
					if !in.Value.Type().Equals(ObjectType(r.Schema)) && !hasDynamic(r.Schema) {
						t.Errorf("%s: value type %s, want %s", in.Addr, in.Value.Type().GoString(), ObjectType(r.Schema).GoString())
					}
					j, err := ctyjson.SimpleJSONValue{Value: in.Value}.MarshalJSON()
					if err != nil {
						t.Fatal(err)
					}
					fmt.Fprintf(&out, "%s = %s\n", in.Addr, j)
				}
			}
			golden(t, filepath.Join(dir, "want.txt"), out.Bytes())
		})
	}
}

func hasDynamic(s *schema.Block) bool {
	for _, a := range s.Attributes {
		if a.Type.HasDynamicTypes() {
			return true
		}
	}
	return false
}
