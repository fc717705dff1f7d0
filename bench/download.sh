#!/usr/bin/env bash
# download.sh: one large file from a real OpenSSH sshd on 127.0.0.1, fetched
# by OpenSSH's `sftp` and by im1's SFTP client (bench/cmd/sftpget), both
# pinned to the same cipher; runs interleaved, medians, throughput ratio.
#
#   bench/download.sh [--size MiB] [--runs N] [--cipher aes|chacha|both]
#
# Besides the ratio of the medians, each line gives the median of each
# round's own ratio ("per-round") and the client's median CPU seconds
# (user+sys, `sftp` with its `ssh`), which /usr/bin/time measures if it
# is installed: client and server share this machine's cores, so CPU per
# byte is what decides the ratio, and it is less disturbed than wall time
# by other load.
# SFTPGET_FLAGS is passed to sftpget (e.g. "-packet 32768 -concurrency 64"),
# and so is the environment (e.g. GOMAXPROCS=1, GOGC=400: process settings
# that the im1 CLI would have to make for the figures to apply to it).
# SFTPGET_BASE=/path/to/sftpget adds a third side, "base" (e.g. sftpget
# built from an older tree), interleaved with the other two, so that a
# change is measured against its predecessor in the same runs.
# SFTPGET_PROFILE=DIR writes a CPU profile of each im1 run there
# (go tool pprof -top DIR/sftpget DIR/CIPHER-N.prof).
set -euo pipefail

size=1024 runs=5 which=both
usage() { sed -n '2,7s/^# \{0,1\}//p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift ;;
	--runs) runs=$2; shift ;;
	--cipher) which=$2; shift ;;
	-h | --help) usage ;;
	*) usage ;;
	esac
	shift
done
case $which in aes) ciphers_list="aes128-gcm@openssh.com" ;; chacha) ciphers_list="chacha20-poly1305@openssh.com" ;;
both) ciphers_list="aes128-gcm@openssh.com chacha20-poly1305@openssh.com" ;; *) usage ;; esac

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/im1-download.XXXXXX")
sshd_pid=""
cleanup() {
	local rc=$?
	if [ -n "$sshd_pid" ]; then kill "$sshd_pid" 2>/dev/null || true; wait "$sshd_pid" 2>/dev/null || true; fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "download.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }
# shellcheck source=bench/sshd.sh
source "$repo/bench/sshd.sh"

log "building sftpget"
(cd "$repo" && go build -o "$work/sftpget" ./bench/cmd/sftpget)
base=${SFTPGET_BASE:-}
[ -z "$base" ] || [ -x "$base" ] || die "SFTPGET_BASE=$base is not an executable"
prof=${SFTPGET_PROFILE:-}
if [ -n "$prof" ]; then mkdir -p "$prof" && cp "$work/sftpget" "$prof/sftpget"; fi
sides="ref ours"
[ -z "$base" ] || sides="ref ours base"
mkdir -p "$work/site"
head -c "$((size << 20))" /dev/urandom >"$work/site/big.csv.gpg"
bytes=$(stat -c %s "$work/site/big.csv.gpg")
now() { date +%s.%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
# shellcheck source=bench/cputime.sh
source "$repo/bench/cputime.sh"

for cipher in $ciphers_list; do
	ssh_dir=$work/ssh-${cipher%%@*}
	mkdir -p "$ssh_dir"
	[ -z "$sshd_pid" ] || { kill "$sshd_pid"; wait "$sshd_pid" 2>/dev/null || true; sshd_pid=""; }
	start_sshd "$cipher" "$ssh_dir"
	ref=() ours=() based=()
	: >"$work/cpu-ref"
	: >"$work/cpu-ours"
	: >"$work/cpu-base"
	for r in $(seq "$runs"); do
		# Each round rotates the order, so that no side always runs first.
		# shellcheck disable=SC2086 # sides is a list of words
		set -- $sides
		for _ in $(seq $(((r - 1) % $#))); do set -- "${@:2}" "$1"; done
		for side in "$@"; do
			t0=$(now)
			case $side in
			ref)
				echo "get $work/site/big.csv.gpg /dev/null" | timed "$work/cpu-ref" sftp -q -b - -o Ciphers="$cipher" -i "$ssh_dir/client_ed25519" \
					-o UserKnownHostsFile="$ssh_dir/known_hosts" -o BatchMode=yes -P "$port" "$user@127.0.0.1" >/dev/null
				ref+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')")
				;;
			ours | base)
				bin=$work/sftpget pflags=()
				[ "$side" = ours ] || bin=$base
				[ "$side" = base ] || [ -z "$prof" ] || pflags=(-cpuprofile "$prof/${cipher%%@*}-$r.prof")
				# shellcheck disable=SC2086 # SFTPGET_FLAGS is a list of flags
				timed "$work/cpu-$side" "$bin" -port "$port" -user "$user" -key "$ssh_dir/client_ed25519" -host-key "$host_key" \
					-dir "$work/site" -name big.csv.gpg -size "$bytes" ${SFTPGET_FLAGS:-} "${pflags[@]}" 2>/dev/null
				t="$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')"
				if [ "$side" = ours ]; then ours+=("$t"); else based+=("$t"); fi
				;;
			esac
		done
	done
	log "${cipher%%@*} wall s, sftp: ${ref[*]}; im1: ${ours[*]}${base:+; base: ${based[*]}}"
	rm=$(printf '%s\n' "${ref[@]}" | median)
	om=$(printf '%s\n' "${ours[@]}" | median)
	bm=""
	[ -z "$base" ] || bm=$(printf '%s\n' "${based[@]}" | median)
	# The median of each round's own ratio: the sides of one round ran
	# back to back, so this is less moved by load that comes and goes.
	paired() { for i in "${!ref[@]}"; do awk -v a="${ref[$i]}" -v b="$(eval "echo \${$1[$i]}")" 'BEGIN { printf "%.4f\n", a / b }'; done | median; }
	op=$(paired ours) bp=""
	[ -z "$base" ] || bp=$(paired based)
	rc="" oc="" bc=""
	if [ -s "$work/cpu-ref" ] && [ -s "$work/cpu-ours" ]; then rc=$(median <"$work/cpu-ref") oc=$(median <"$work/cpu-ours"); fi
	if [ -s "$work/cpu-base" ]; then bc=$(median <"$work/cpu-base"); fi
	awk -v c="$cipher" -v r="$rm" -v o="$om" -v bm="$bm" -v b="$bytes" -v rc="$rc" -v oc="$oc" -v bc="$bc" -v op="$op" -v bp="$bp" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
		printf "%s: sftp %.3f s (%.0f MB/s), im1 %.3f s (%.0f MB/s), throughput ratio im1/sftp %.2f (>= 1 means im1 is as fast or faster), per-round median %.2f",
			c, r, b / r / 1e6, o, b / o / 1e6, r / o, op
		if (bm != "") printf "; base %.3f s (%.0f MB/s), ratio %.2f, per-round %.2f", bm, b / bm / 1e6, r / bm, bp
		if (rc != "" && oc != "") printf "; client CPU sftp %.2f s, im1 %.2f s", rc, oc
		if (bc != "") printf ", base %.2f s", bc
		printf "; load %s\n", load }'
done
