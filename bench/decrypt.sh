#!/usr/bin/env bash
# decrypt.sh: single-stream decrypt + validate + land (bench/cmd/landbench,
# which runs im1's pgpkey.Decrypt -> landing.Check -> Pending -> Commit path)
# against `gpg --decrypt -o FILE`, on gpg-made SEIPD v1 files (zlib and
# uncompressed), runs interleaved, medians reported; then landbench's peak
# RSS for inputs streamed through a pipe (generator | gpg -e | landbench).
# See bench/README.md.
#
#   bench/decrypt.sh [--size MiB] [--runs N] [--rss-sizes "64 1024"]
#                    [--compress "zlib none"] [--keep] [--json FILE]
set -euo pipefail

size=256 runs=5 rss_sizes="64 1024" modes="zlib none" keep=0 json=""
usage() { sed -n '2,10s/^# \{0,1\}//p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift ;;
	--runs) runs=$2; shift ;;
	--rss-sizes) rss_sizes=$2; shift ;;
	--compress) modes=$2; shift ;;
	--keep) keep=1 ;;
	--json) json=$(realpath -m "$2"); shift ;;
	-h | --help) usage ;;
	*) echo "decrypt.sh: unknown flag $1" >&2; usage ;;
	esac
	shift
done
[[ $runs =~ ^[1-9][0-9]*$ && $size =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage
for m in $modes; do case $m in zlib | none) ;; *) usage ;; esac; done

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/im1-decrypt.XXXXXX")
export GNUPGHOME=$work/gnupg
cleanup() {
	local rc=$?
	if [ -d "$GNUPGHOME" ]; then gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null || true; fi
	if [ "$keep" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "decrypt.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

# A throwaway key and passphrase (not a secret).
export IM1_KEY_PASSPHRASE="bench passphrase, throwaway key"
uid="Decrypt Bench <bench@example.invalid>"
mkdir -p "$work/bin" "$work/out"
mkdir -m 700 "$GNUPGHOME"
# As in fetch.sh: the minimum agent S2K count, so that gpg's per-process key
# unlocking (about 0.3 s with the calibrated default) does not hide its data
# path. landbench unlocks the exported key (same S2K) in every run too.
echo "s2k-count 65536" >"$GNUPGHOME/gpg-agent.conf"
gpg_cmd=(gpg --batch --yes --quiet --trust-model always --pinentry-mode loopback --passphrase "$IM1_KEY_PASSPHRASE")
gpgq() { "${gpg_cmd[@]}" "$@"; }
# gpg's CPU is its own process's: gpg-agent's share, the session key's RSA
# decryption, is not counted.
# shellcheck source=bench/cputime.sh
source "$repo/bench/cputime.sh"

log "building landbench"
(cd "$repo" && go build -o "$work/bin/landbench" ./bench/cmd/landbench)
lb=$work/bin/landbench

log "generating an rsa3072 key with gpg"
gpgq --quick-gen-key "$uid" rsa3072 encr never 2>/dev/null
gpgq --armor --export-secret-keys "$uid" >"$work/sec.asc"

log "generating ${size} MiB of plaintext (one EMIS CareRecord_Observation table)"
"$lb" gen -size "$size" >"$work/plain.csv"
bytes=$(wc -c <"$work/plain.csv")
want=$(sha256sum <"$work/plain.csv" | cut -d' ' -f1)
for m in $modes; do
	gpgq -r "$uid" --compress-algo "$m" -o "$work/$m.gpg" --encrypt "$work/plain.csv"
done

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

run_gpg() { # $1 mode; prints seconds
	local t0 t1
	rm -f "$work/out/gpg.csv"
	t0=$EPOCHREALTIME
	timed "$work/cpu-gpg-$1" "${gpg_cmd[@]}" --decrypt -o "$work/out/gpg.csv" "$work/$1.gpg" 2>/dev/null
	t1=$EPOCHREALTIME
	elapsed "$t0" "$t1"
}
run_gpgsync() { # $1 mode; prints seconds: gpg, then `sync FILE` (fsync), the
	# durable form a script needs before it may call the file landed
	local t0 t1
	rm -f "$work/out/gpg.csv"
	t0=$EPOCHREALTIME
	gpgq --decrypt -o "$work/out/gpg.csv" "$work/$1.gpg" 2>/dev/null
	sync "$work/out/gpg.csv"
	t1=$EPOCHREALTIME
	elapsed "$t0" "$t1"
}
run_im1() { # $1 mode; prints seconds (whole process: key unlock included)
	local t0 t1 line
	rm -rf "$work/out/land"
	t0=$EPOCHREALTIME
	line=$(timed "$work/cpu-im1-$1" "$lb" land -key "$work/sec.asc" -in "$work/$1.gpg" -out "$work/out/land")
	t1=$EPOCHREALTIME
	[[ $line == *"sha256=$want "* ]] || die "landbench landed different bytes: $line"
	elapsed "$t0" "$t1"
}

results=()
for m in $modes; do
	log "$m: $runs interleaved runs, $bytes plaintext bytes, $(wc -c <"$work/$m.gpg") ciphertext bytes"
	run_gpg "$m" >/dev/null # warm up both (page cache, gpg-agent)
	[ "$(sha256sum <"$work/out/gpg.csv" | cut -d' ' -f1)" = "$want" ] || die "gpg output differs from the plaintext"
	run_im1 "$m" >/dev/null
	: >"$work/cpu-gpg-$m"
	: >"$work/cpu-im1-$m"
	g=() l=() d=()
	for i in $(seq "$runs"); do
		if [ $((i % 2)) = 1 ]; then
			a=$(run_gpg "$m"); b=$(run_im1 "$m"); c=$(run_gpgsync "$m")
		else
			c=$(run_gpgsync "$m"); b=$(run_im1 "$m"); a=$(run_gpg "$m")
		fi
		g+=("$a") l+=("$b") d+=("$c")
		printf '%s run %d: gpg %ss  landbench %ss  gpg+sync %ss\n' "$m" "$i" "$a" "$b" "$c"
	done
	gm=$(printf '%s\n' "${g[@]}" | median)
	lm=$(printf '%s\n' "${l[@]}" | median)
	dm=$(printf '%s\n' "${d[@]}" | median)
	awk -v m="$m" -v g="$gm" -v l="$lm" -v d="$dm" -v b="$bytes" 'BEGIN {
		printf "%s: median gpg %.3f s (%.0f MB/s), landbench %.3f s (%.0f MB/s), throughput ratio landbench/gpg %.2f (>= 1 means im1 is as fast or faster)\n",
			m, g, b / g / 1e6, l, b / l / 1e6, g / l
		printf "%s: durable reference gpg + sync FILE %.3f s, ratio landbench/(gpg+sync) %.2f (landbench fsyncs what it lands)\n", m, d, d / l }'
	gc=null lc=null
	if [ -s "$work/cpu-gpg-$m" ] && [ -s "$work/cpu-im1-$m" ]; then
		gc=$(median <"$work/cpu-gpg-$m") lc=$(median <"$work/cpu-im1-$m")
		# CPU seconds over the number of cores bound the wall time from below.
		echo "$m: median CPU (user+sys) gpg ${gc} s, landbench ${lc} s"
	fi
	results+=("\"$m\": {\"gpg_s\": $gm, \"landbench_s\": $lm, \"gpg_sync_s\": $dm, \"gpg_cpu_s\": $gc, \"landbench_cpu_s\": $lc, \"ratio\": $(awk -v g="$gm" -v l="$lm" 'BEGIN { printf "%.3f", g / l }'), \"durable_ratio\": $(awk -v d="$dm" -v l="$lm" 'BEGIN { printf "%.3f", d / l }')}")
done

log "peak RSS for inputs streamed through a pipe (landbench gen | gpg -e --compress-algo zlib | landbench land)"
rss=()
for s in $rss_sizes; do
	rm -rf "$work/out/land"
	line=$("$lb" gen -size "$s" | gpgq -r "$uid" --compress-algo zlib --encrypt |
		"$lb" land -key "$work/sec.asc" -in - -out "$work/out/land")
	kib=${line##*vmhwm_kib=}
	printf '%s MiB streamed: landbench peak RSS %s KiB (%s)\n' "$s" "$kib" "${line%% sha256=*}"
	rss+=("\"$s\": $kib")
done
rm -rf "$work/out/land"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$json" ]; then
	(IFS=,; printf '{"bytes": %s, "runs": %s, %s, "peak_rss_kib": {%s}}\n' "$bytes" "$runs" "${results[*]}" "${rss[*]}") >"$json"
fi
