package schema

import (
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown renders one block type's reference: every attribute with
// its type, whether it is required, its default and its meaning.
func WriteMarkdown(w io.Writer, name string, labels string, b *Block) {
	fmt.Fprintf(w, "## `%s%s`\n\n%s\n\n", name, labels, b.Doc)
	if b.ForEach {
		fmt.Fprintf(w, "Accepts `for_each` (a map or set of strings); instances are addressed `%s.<name>[\"<key>\"]`.\n\n", name)
	}
	writeAttrs(w, b)
	for _, n := range b.Blocks {
		lab := ""
		for _, l := range n.Labels {
			lab += fmt.Sprintf(" \"<%s>\"", l)
		}
		fmt.Fprintf(w, "### Nested block `%s%s`\n\n%s\n\n", n.Name, lab, n.Doc)
		writeAttrs(w, n.Block)
	}
}

func writeAttrs(w io.Writer, b *Block) {
	if len(b.Attributes) == 0 {
		return
	}
	fmt.Fprintf(w, "| attribute | type | | default | meaning |\n|---|---|---|---|---|\n")
	for _, a := range b.Attributes {
		kind := "optional"
		switch {
		case a.Required:
			kind = "required"
		case a.Computed:
			kind = "computed"
		}
		if a.Sensitive {
			kind += ", sensitive"
		}
		if a.ForceNew {
			kind += ", forces replacement"
		}
		def := ""
		if a.Default != NilValue && !a.Default.IsNull() {
			def = "`" + strings.ReplaceAll(DisplayValue(a.Default), "|", `\|`) + "`"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s |\n", a.Name, TypeString(a.Type), kind, def, strings.ReplaceAll(a.Doc, "|", `\|`))
	}
	fmt.Fprintln(w)
}
