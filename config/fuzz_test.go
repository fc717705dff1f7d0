package config

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// FuzzLoad loads arbitrary input as a configuration file, evaluates what
// loaded and renders the diagnostics: none of it may panic.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`organisation "A81001" { ods = "A81001" }`))
	f.Fuzz(func(t *testing.T, src []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.im1.hcl"), src, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, diags := Load(dir, LoadOptions{Schemas: testSchemas(), Environ: []string{}, Vars: []VarArg{{Assign: "x=1"}}})
		for _, r := range cfg.Order() {
			_, d := cfg.Eval(r, func(string) cty.Value { return cty.DynamicVal })
			diags = append(diags, d...)
		}
		_ = WriteDiagnostics(io.Discard, cfg.Files, diags, 80, false)
		if _, err := DiagnosticsJSON(diags); err != nil {
			t.Fatal(err)
		}
		_ = Format(src)
	})
}
