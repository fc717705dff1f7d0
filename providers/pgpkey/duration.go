package pgpkey

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads key lifetimes and windows: "730d", "52w", or any Go
// duration such as "8760h". Days are 24 hours (keys live in UTC). The
// result must be positive.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration: want e.g. 730d, 52w or 8760h")
	}
	var d time.Duration
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	if u, ok := unit[s[len(s)-1]]; ok {
		n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
		if err != nil || n > int64(1<<62)/int64(u) {
			return 0, fmt.Errorf("invalid duration %q: want a whole number of days (730d), weeks (52w) or hours (8760h)", s)
		}
		d = time.Duration(n) * u
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("invalid duration %q: want e.g. 730d, 52w or 8760h", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration %q must be positive", s)
	}
	return d, nil
}
