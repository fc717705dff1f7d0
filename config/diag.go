package config

import (
	"bytes"
	"encoding/json"
	"io"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// WriteDiagnostics renders diagnostics as text with source snippets from
// files; width 0 disables wrapping.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, width uint, color bool) error {
	return hcl.NewDiagnosticTextWriter(w, files, width, color).WriteDiagnostics(diags)
}

// JSONDiagnostic is one diagnostic in the shape of Terraform's -json output.
type JSONDiagnostic struct {
	Severity string       `json:"severity"` // "error" or "warning"
	Summary  string       `json:"summary"`
	Detail   string       `json:"detail"`
	Range    *JSONRange   `json:"range,omitempty"`
	Snippet  *JSONSnippet `json:"snippet,omitempty"`
}

// JSONRange is a source range; lines and columns count from 1, bytes from 0.
type JSONRange struct {
	Filename string  `json:"filename"`
	Start    JSONPos `json:"start"`
	End      JSONPos `json:"end"`
}

// JSONPos is one position in a source file.
type JSONPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// JSONSnippet is the source text around a diagnostic.
type JSONSnippet struct {
	// Context names the enclosing top-level block, e.g. `organisation "A81001"`.
	Context *string `json:"context"`
	// Code is the full lines the range covers.
	Code      string `json:"code"`
	StartLine int    `json:"start_line"`
	// HighlightStartOffset and HighlightEndOffset are byte offsets of the
	// range within Code.
	HighlightStartOffset int `json:"highlight_start_offset"`
	HighlightEndOffset   int `json:"highlight_end_offset"`
}

// DiagnosticsJSON renders diagnostics as a JSON array, reading snippets
// from the files the ranges name.
func DiagnosticsJSON(diags hcl.Diagnostics) ([]byte, error) {
	return json.Marshal(JSONDiagnostics(nil, diags))
}

// JSONDiagnostics converts diagnostics, taking snippets from files (as in
// Config.Files) and reading any other named file from disk.
func JSONDiagnostics(files map[string]*hcl.File, diags hcl.Diagnostics) []JSONDiagnostic {
	out := make([]JSONDiagnostic, 0, len(diags))
	sources := map[string][]byte{}
	for name, f := range files {
		if f != nil {
			sources[name] = f.Bytes
		}
	}
	source := func(name string) []byte {
		if b, ok := sources[name]; ok {
			return b
		}
		b, err := os.ReadFile(name)
		if err != nil {
			b = nil
		}
		sources[name] = b
		return b
	}
	for _, d := range diags {
		jd := JSONDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			jd.Severity = "warning"
		}
		if r := d.Subject; r != nil {
			jd.Range = &JSONRange{
				Filename: r.Filename,
				Start:    JSONPos{r.Start.Line, r.Start.Column, r.Start.Byte},
				End:      JSONPos{r.End.Line, r.End.Column, r.End.Byte},
			}
			jd.Snippet = snippet(source(r.Filename), *r)
		}
		out = append(out, jd)
	}
	return out
}

// snippet cuts the full lines covering r out of src; nil when r does not
// fit src (a file changed since it was parsed, or a synthetic name).
func snippet(src []byte, r hcl.Range) *JSONSnippet {
	if src == nil || r.Start.Byte < 0 || r.End.Byte < r.Start.Byte || r.End.Byte > len(src) {
		return nil
	}
	start := bytes.LastIndexByte(src[:r.Start.Byte], '\n') + 1
	end := len(src)
	if i := bytes.IndexByte(src[r.End.Byte:], '\n'); i >= 0 {
		end = r.End.Byte + i
	}
	// A range ending just after a newline covers no part of the next line.
	if r.End.Byte > r.Start.Byte && src[r.End.Byte-1] == '\n' {
		end = r.End.Byte - 1
	}
	if end < start {
		end = start
	}
	s := &JSONSnippet{
		Code:                 string(src[start:end]),
		StartLine:            r.Start.Line,
		HighlightStartOffset: r.Start.Byte - start,
		HighlightEndOffset:   min(r.End.Byte, end) - start,
	}
	if f, diags := hclsyntax.ParseConfig(src, r.Filename, hcl.InitialPos); !diags.HasErrors() {
		if nav, ok := f.Nav.(interface{ ContextString(int) string }); ok {
			if c := nav.ContextString(r.Start.Byte); c != "" {
				s.Context = &c
			}
		}
	}
	return s
}
