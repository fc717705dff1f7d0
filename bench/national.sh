#!/usr/bin/env bash
# national.sh: `im1 plan -refresh=false` at national scale through the CLI:
# N organisation-specific EMIS sites with a year of daily deliveries each
# (built into state by the e2e generator, which also prints its in-process
# figure), once with nothing to do and once with 1,000 deliveries missing.
# Reports median wall time and peak RSS of each against the issue's goals
# (2 s, 256 MiB), and checks each plan's outcome. See bench/README.md.
#
#   bench/national.sh [--orgs N] [--runs N] [--keep] [--json FILE]
set -euo pipefail

orgs=7000 runs=5 keep=0 json=""
usage() { sed -n '2,9s/^# \{0,1\}//p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in
	--orgs) orgs=$2; shift ;;
	--runs) runs=$2; shift ;;
	--keep) keep=1 ;;
	--json) json=$(realpath -m "$2"); shift ;;
	-h | --help) usage ;;
	*) echo "national.sh: unknown flag $1" >&2; usage ;;
	esac
	shift
done
[[ $runs =~ ^[1-9][0-9]*$ && $orgs =~ ^[1-9][0-9]*$ ]] || usage
[ -x /usr/bin/time ] || { echo "national.sh: needs /usr/bin/time (apt-get install time) for peak RSS" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/im1-national.XXXXXX")
cleanup() {
	local rc=$?
	if [ "$keep" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "national.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

log "building im1"
(cd "$repo" && go build -o "$work/im1" ./cmd/im1)
missing=$((orgs < 1000 ? orgs : 1000))

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

results=()
for variant in none missing; do
	dir=$work/$variant
	bench=NationalPlan
	[ "$variant" = missing ] && bench=NationalPlanMissing
	log "$variant: generating $orgs sites x 365 days into $dir (the generator's own benchmark runs once)"
	(cd "$repo" && IM1_NATIONAL_DIR=$dir IM1_NATIONAL_ORGS=$orgs go test ./e2e -run '^$' -bench "^Benchmark$bench\$" -benchtime 1x) |
		grep -E "^Benchmark|generated" >&2
	# The generator leaves its state (about 800 MB) in the page cache,
	# dirty: write it back before timing, or the kernel's write-back runs
	# during the first plans and they measure it too.
	sync
	walls=() rss=()
	for i in $(seq "$runs"); do
		out=$(cd "$dir" && IM1_NOW=2026-11-20T09:00:00Z /usr/bin/time -f "%e %M" -o "$work/time" "$work/im1" plan -refresh=false 2>&1) ||
			die "$variant: im1 plan failed: $(tail -5 <<<"$out")"
		if [ "$variant" = none ]; then
			grep -q "^No changes\." <<<"$out" || die "none: the plan is not empty: $(tail -3 <<<"$out")"
		else
			grep -q ", $missing to request again\.$" <<<"$out" || die "missing: the plan does not request $missing deliveries: $(tail -1 <<<"$out")"
		fi
		read -r w k <"$work/time"
		walls+=("$w") rss+=("$k")
		echo "   run $i: $w s, peak RSS $((k / 1024)) MiB" >&2
	done
	mw=$(printf '%s\n' "${walls[@]}" | median)
	mk=$(printf '%s\n' "${rss[@]}" | median)
	results+=("$variant $mw $mk $(printf '%s,' "${walls[@]}")")
done

load=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "national plan, $orgs sites, $runs runs, 1-minute load now: $load"
printf '%-8s %10s %14s   %s\n' plan "wall (med)" "peak RSS (med)" "goal: <= 2 s, <= 256 MiB"
for r in "${results[@]}"; do
	read -r v w k _ <<<"$r"
	ok=yes
	awk -v w="$w" -v k="$k" 'BEGIN {exit !(w <= 2.0 && k <= 256*1024)}' || ok=no
	printf '%-8s %9.2fs %11d MiB   %s\n' "$v" "$w" "$((${k%.*} / 1024))" "$ok"
done
if [ -n "$json" ]; then
	{
		echo "{\"orgs\": $orgs, \"runs\": $runs, \"load\": \"$load\", \"plans\": {"
		sep=""
		for r in "${results[@]}"; do
			read -r v w k all <<<"$r"
			printf '%s"%s": {"wall_s": %s, "peak_rss_kib": %s, "walls_s": [%s]}' "$sep" "$v" "$w" "$k" "${all%,}"
			sep=", "
		done
		echo "}}"
	} >"$json"
fi
