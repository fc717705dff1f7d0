package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Format returns src in canonical layout (im1 fmt).
func Format(src []byte) []byte { return hclwrite.Format(src) }

// FormatDir formats every *.im1.hcl file in dir, returning the names (as
// dir/name) of those not already canonical. With write they are rewritten
// in place; without (fmt -check) nothing is written. Files with syntax
// errors are reported and left alone, since formatting them could lose text.
func FormatDir(dir string, write bool) (changed []string, diags hcl.Diagnostics) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Failed to read configuration directory", Detail: err.Error()}}
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, FileSuffix) || strings.HasPrefix(name, ".") {
			continue
		}
		filename := filepath.Join(dir, name)
		src, err := os.ReadFile(filename)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Failed to read file", Detail: err.Error()})
			continue
		}
		if _, d := hclsyntax.ParseConfig(src, filename, hcl.InitialPos); d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		out := Format(src)
		if bytes.Equal(out, src) {
			continue
		}
		changed = append(changed, filename)
		if !write {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Failed to write file", Detail: err.Error()})
			continue
		}
		if err := writeFileAtomic(filename, out, fi.Mode().Perm()); err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Failed to write file", Detail: err.Error()})
		}
	}
	return changed, diags
}

// writeFileAtomic replaces a file through a temporary sibling and rename,
// so an interrupted fmt never leaves a half-written configuration.
func writeFileAtomic(filename string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(filename), "."+filepath.Base(filename)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filename)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
