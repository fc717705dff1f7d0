package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func (c *Config) secrets() *secrets { return c.sec }

// traversals lists the variables a body references, attributes in source
// order and then nested blocks, recursively; skip names attributes left out.
func traversals(body *hclsyntax.Body, skip string) []hcl.Traversal {
	var out []hcl.Traversal
	for _, a := range sortedAttributes(body) {
		if a.Name != skip {
			out = append(out, a.Expr.Variables()...)
		}
	}
	for _, b := range body.Blocks {
		out = append(out, traversals(b.Body, "")...)
	}
	return out
}

// refScope says which roots a traversal may use where it appears.
type refScope struct {
	each      bool   // each.key / each.value are available
	resources bool   // resources may be referenced
	where     string // for messages: "the im1 block", "a for_each argument"
	self      string // address of the enclosing resource
}

// checkTraversal validates one traversal against the declared variables
// and resources; it returns the address of a referenced resource, if any.
func (l *loader) checkTraversal(t hcl.Traversal, sc refScope) (string, hcl.Diagnostics) {
	root := t.RootName()
	rng := t.SourceRange().Ptr()
	errDiag := func(summary, detail string) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng}}
	}
	switch {
	case root == "var":
		name, ok := varName(t)
		if !ok {
			return "", errDiag("Invalid reference", `A reference to "var" must be followed by a variable name, like var.region.`)
		}
		if l.cfg.Variables[name] == nil {
			return "", errDiag("Reference to undeclared input variable",
				fmt.Sprintf("An input variable with the name %q has not been declared.", name)+didYouMean(name, l.varOrder))
		}
	case root == "each":
		if !sc.each {
			return "", errDiag(`Reference to "each" in context without for_each`,
				fmt.Sprintf(`The "each" object can be used only in blocks that set for_each, and not in %s.`, sc.where))
		}
		a, ok := attrStep(t, 1)
		if !ok || (a != "key" && a != "value") {
			return "", errDiag(`Invalid "each" attribute`, `The "each" object has only the attributes "key" and "value".`)
		}
	case l.opts.Schemas[root] != nil:
		if !sc.resources {
			return "", errDiag("Invalid reference", fmt.Sprintf("Resources cannot be referenced from %s.", sc.where))
		}
		name, ok := attrStep(t, 1)
		if !ok {
			return "", errDiag("Invalid reference",
				fmt.Sprintf("A reference to %s must be followed by a name, like %s.NAME.", root, root))
		}
		addr := root + "." + name
		if addr == sc.self {
			return "", errDiag("Self reference: "+addr, fmt.Sprintf("Configuration for %s may not refer to itself.", addr))
		}
		if l.cfg.byAddr[addr] == nil {
			var names []string
			for _, r := range l.cfg.Resources {
				if r.Type == root {
					names = append(names, r.Name)
				}
			}
			return "", errDiag("Reference to undeclared resource",
				fmt.Sprintf("No %s named %q has been declared.", root, name)+didYouMean(name, names))
		}
		return addr, nil
	}
	// Anything else is a function-local name (for expressions) or an
	// unknown variable, which evaluation reports.
	return "", nil
}

func attrStep(t hcl.Traversal, i int) (string, bool) {
	if len(t) <= i {
		return "", false
	}
	a, ok := t[i].(hcl.TraverseAttr)
	return a.Name, ok
}

// references records r.Refs and reports bad references in r.
func (l *loader) references(r *Resource) {
	seen := map[string]bool{}
	add := func(ts []hcl.Traversal, sc refScope) {
		for _, t := range ts {
			addr, diags := l.checkTraversal(t, sc)
			l.diags = append(l.diags, diags...)
			if diags.HasErrors() {
				r.broken = true
			}
			if addr != "" && !seen[addr] {
				seen[addr] = true
				r.Refs = append(r.Refs, Ref{Addr: addr, Range: t.SourceRange()})
			}
		}
	}
	if r.ForEach != nil {
		add(r.ForEach.Variables(), refScope{resources: true, where: "the for_each argument itself", self: r.Addr()})
	}
	add(traversals(r.body, "for_each"), refScope{each: r.ForEach != nil, resources: true, where: "a block without for_each", self: r.Addr()})
}

// cycles reports every group of resources that reference each other in a
// loop (strongly connected components of more than one resource).
func (l *loader) cycles() {
	rs := l.cfg.Resources
	index := map[string]int{}
	for i, r := range rs {
		index[r.Addr()] = i
	}
	// Tarjan's algorithm, iterative over an explicit stack would be longer;
	// recursion depth is bounded by the number of resources.
	n := len(rs)
	idx, low := make([]int, n), make([]int, n)
	on := make([]bool, n)
	for i := range idx {
		idx[i] = -1
	}
	var stack []int
	next := 0
	var sccs [][]int
	var visit func(v int)
	visit = func(v int) {
		idx[v], low[v] = next, next
		next++
		stack = append(stack, v)
		on[v] = true
		for _, ref := range rs[v].Refs {
			w, ok := index[ref.Addr]
			if !ok {
				continue
			}
			if idx[w] < 0 {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if on[w] {
				low[v] = min(low[v], idx[w])
			}
		}
		if low[v] == idx[v] {
			var scc []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				on[w] = false
				scc = append(scc, w)
				if w == v {
					break
				}
			}
			if len(scc) > 1 {
				sccs = append(sccs, scc)
			}
		}
	}
	for v := range rs {
		if idx[v] < 0 {
			visit(v)
		}
	}
	for _, scc := range sccs {
		sort.Ints(scc)
	}
	sort.Slice(sccs, func(i, j int) bool { return sccs[i][0] < sccs[j][0] })
	for _, scc := range sccs {
		in := map[string]bool{}
		var names []string
		for _, v := range scc {
			in[rs[v].Addr()] = true
			names = append(names, rs[v].Addr())
		}
		first := rs[scc[0]]
		subject := first.DeclRange
		for _, ref := range first.Refs {
			if in[ref.Addr] {
				subject = ref.Range
				break
			}
		}
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Cycle: " + strings.Join(names, ", "),
			Detail:   "These blocks reference each other in a loop, so none of them can be evaluated first. Remove one of the references.",
			Subject:  subject.Ptr(),
		})
	}
}

// Order returns the resources with every resource after those it
// references; ties keep declaration order. Resources in a cycle (which Load
// reports) come last, in declaration order.
func (c *Config) Order() []*Resource {
	rs := c.Resources
	index := map[string]int{}
	for i, r := range rs {
		index[r.Addr()] = i
	}
	pending := make([]int, len(rs)) // unsatisfied dependencies
	dependents := make([][]int, len(rs))
	for i, r := range rs {
		for _, ref := range r.Refs {
			if j, ok := index[ref.Addr]; ok && j != i {
				pending[i]++
				dependents[j] = append(dependents[j], i)
			}
		}
	}
	// ready is kept sorted by declaration index; a heap would be faster
	// for huge graphs but declaration order makes the insert cheap enough.
	var ready []int
	for i := range rs {
		if pending[i] == 0 {
			ready = append(ready, i)
		}
	}
	done := make([]bool, len(rs))
	out := make([]*Resource, 0, len(rs))
	for len(ready) > 0 {
		v := ready[0]
		ready = ready[1:]
		done[v] = true
		out = append(out, rs[v])
		for _, w := range dependents[v] {
			pending[w]--
			if pending[w] == 0 {
				k := sort.SearchInts(ready, w)
				ready = append(ready, 0)
				copy(ready[k+1:], ready[k:])
				ready[k] = w
			}
		}
	}
	for i, r := range rs {
		if !done[i] {
			out = append(out, r)
		}
	}
	return out
}

// validateResources evaluates every well-formed resource with unknown
// values for the resources it references, so type errors and failed checks
// in literal values and variables surface at load (im1 validate).
func (l *loader) validateResources() {
	for _, r := range l.cfg.Resources {
		if r.broken {
			continue
		}
		insts, diags := l.cfg.eval(r, l.cfg.unknownLookup, true, nil)
		l.diags = append(l.diags, diags...)
		if len(r.Refs) == 0 && !diags.HasErrors() && insts != nil {
			r.validated = &evaluated{insts: insts, diags: diags}
		}
	}
}
