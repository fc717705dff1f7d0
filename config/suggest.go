package config

import (
	"fmt"
	"sort"

	"github.com/agext/levenshtein"
)

// didYouMean returns ` Did you mean "x"?` naming the candidate closest to
// given (edit distance at most 3, and less than the length of given so
// that short names do not match everything; ties go to the alphabetically
// first), or "" when none is close.
func didYouMean(given string, candidates []string) string {
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	best, bestDist := "", 4
	for _, c := range sorted {
		if d := levenshtein.Distance(given, c, nil); d < bestDist && d < len(given) {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}
