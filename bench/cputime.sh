# cputime.sh: sourced by the benchmarks. `timed FILE CMD...` runs CMD and,
# when /usr/bin/time is installed, appends its user+sys CPU seconds to FILE;
# without it, CMD just runs. The caller's $work holds the scratch file.

timed() {
	local out=$1
	shift
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f '%U %S' -o "$work/cpu.tmp" "$@" || return
		awk '{ printf "%.2f\n", $1 + $2 }' "$work/cpu.tmp" >>"$out"
	else
		"$@"
	fi
}
