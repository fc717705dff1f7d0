package emisfile

// NHSCheckDigit returns the Modulus 11 check digit for the first nine digits
// of an NHS number, and false when no valid number has that stem (the
// computed digit would be 10).
func NHSCheckDigit(stem string) (byte, bool) {
	if len(stem) < 9 {
		return 0, false
	}
	sum := 0
	for i := 0; i < 9; i++ {
		c := stem[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		sum += int(c-'0') * (10 - i)
	}
	check := 11 - sum%11
	switch check {
	case 11:
		check = 0
	case 10:
		return 0, false
	}
	return byte('0' + check), true
}

// ValidNHSNumber reports whether s is ten digits with a correct Modulus 11
// check digit.
func ValidNHSNumber(s string) bool {
	if len(s) != 10 {
		return false
	}
	d, ok := NHSCheckDigit(s[:9])
	return ok && s[9] == d
}
