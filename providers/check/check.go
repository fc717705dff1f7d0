// Package check holds the value checks that schemas share: ODS codes,
// GUIDs, dates, durations and enumerations. Each returns a function for
// schema.Attribute.Check, so a bad value becomes a ranged diagnostic.
package check

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"
)

var (
	odsRe  = regexp.MustCompile(`^[A-Z][A-Z0-9]{2,9}$`)
	guidRe = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
)

// ODS accepts an ODS organisation code: upper case, a letter then 2 to 9
// letters or digits (GP practices are a letter and five digits, A81001).
func ODS(s string) error {
	if !odsRe.MatchString(s) {
		return fmt.Errorf("%q is not an ODS code (a capital letter then 2 to 9 capitals or digits, e.g. A81001)", s)
	}
	return nil
}

// GUID accepts an 8-4-4-4-12 hex GUID as EMIS writes sharing agreements.
func GUID(s string) error {
	if !guidRe.MatchString(s) {
		return fmt.Errorf("%q is not a GUID (8-4-4-4-12 hexadecimal digits)", s)
	}
	return nil
}

// Date accepts yyyy-mm-dd.
func Date(s string) error {
	if _, err := time.Parse(time.DateOnly, s); err != nil {
		return fmt.Errorf("%q is not a date in the form yyyy-mm-dd", s)
	}
	return nil
}

// ParseDuration extends time.ParseDuration with whole days ("730d") and
// weeks ("52w"), the units people use for key validity and retention.
func ParseDuration(s string) (time.Duration, error) {
	if n := len(s); n > 1 && (s[n-1] == 'd' || s[n-1] == 'w') {
		v, err := strconv.Atoi(s[:n-1])
		if err != nil || v < 0 {
			return 0, fmt.Errorf("%q is not a duration (e.g. 730d, 52w, 36h)", s)
		}
		day := 24 * time.Hour
		if s[n-1] == 'w' {
			day *= 7
		}
		return time.Duration(v) * day, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (e.g. 730d, 52w, 36h)", s)
	}
	return d, nil
}

// Duration accepts what ParseDuration accepts.
func Duration(s string) error { _, err := ParseDuration(s); return err }

// OneOf accepts one of the given words.
func OneOf(words ...string) func(string) error {
	return func(s string) error {
		for _, w := range words {
			if s == w {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", s, strings.Join(quote(words), ", "))
	}
}

func quote(ws []string) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = strconv.Quote(w)
	}
	return out
}

// String adapts a string check to a cty value check.
func String(f func(string) error) func(cty.Value) error {
	return func(v cty.Value) error {
		if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
			return nil
		}
		return f(v.AsString())
	}
}

// Each adapts a string check to every known element of a list or set.
func Each(f func(string) error) func(cty.Value) error {
	return func(v cty.Value) error {
		if v.IsNull() || !v.IsKnown() || !v.CanIterateElements() {
			return nil
		}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			if e.IsKnown() && !e.IsNull() && e.Type() == cty.String {
				if err := f(e.AsString()); err != nil {
					return err
				}
			}
		}
		return nil
	}
}
